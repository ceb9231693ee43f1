//! Activations by id, with the ids of freed ones reused: what both backends keep their
//! activations in.

use super::ActId;

/// Items by [`ActId`]; a freed id is handed out again.
pub(crate) struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Slab<T> {
    /// An empty slab.
    pub fn new() -> Self {
        Self { items: Vec::new(), free: Vec::new() }
    }

    /// Stores `item` under a free id.
    pub fn insert(&mut self, item: T) -> ActId {
        match self.free.pop() {
            Some(i) => {
                self.items[i] = Some(item);
                ActId(i)
            }
            None => {
                self.items.push(Some(item));
                ActId(self.items.len() - 1)
            }
        }
    }

    /// Takes the item out, freeing its id; `None` if it was not there.
    pub fn remove(&mut self, id: ActId) -> Option<T> {
        let item = self.items.get_mut(id.0).and_then(Option::take);
        if item.is_some() {
            self.free.push(id.0);
        }
        item
    }

    /// The live item `id` (the host passes only live ids).
    pub fn get(&self, id: ActId) -> &T {
        self.items[id.0].as_ref().expect("the host passes live ids")
    }

    /// The live item `id`, to change.
    pub fn get_mut(&mut self, id: ActId) -> &mut T {
        self.items[id.0].as_mut().expect("the host passes live ids")
    }
}
