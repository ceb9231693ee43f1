//! What every fuzz target shares: an allocator that turns any single allocation larger than
//! [`ALLOCATION_CAP`] into a crash, so a parser that trusts a size field from the file (instead
//! of checking it against the file first) is found even when the machine could satisfy it.

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest single allocation a parser may make for a fuzz input (inputs are at most a few
/// hundred kilobytes; anything near this size came from an unchecked count in the data).
pub const ALLOCATION_CAP: usize = 64 << 20;

/// The system allocator with [`ALLOCATION_CAP`] enforced.
pub struct CappedAllocator;

// SAFETY: forwards to `System` unchanged, after a size check that aborts.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn check(size: usize) {
    if size > ALLOCATION_CAP {
        // No allocation may happen here: report with a fixed message, then abort (libFuzzer
        // records the input as a crash).
        let msg = b"fuzz: an allocation above the 64 MiB cap (a size taken from the input unchecked)\n";
        // SAFETY: writing a static buffer to stderr.
        unsafe { libc_write(2, msg.as_ptr(), msg.len()) };
        std::process::abort();
    }
}

extern "C" {
    #[link_name = "write"]
    fn libc_write(fd: i32, buf: *const u8, count: usize) -> isize;
}

/// Installs [`CappedAllocator`] as the target's global allocator.
#[macro_export]
macro_rules! capped_allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::CappedAllocator = $crate::CappedAllocator;
    };
}
