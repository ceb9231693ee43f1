//! The Wasmtime side: one engine and compiled guest per process, one store per session.
//!
//! The guest is granted nothing: an empty WASI context (no files, sockets, environment or
//! arguments), a linear-memory cap, and an epoch deadline that lets the host interrupt it and
//! stops a guest that stalls (runs without getting anything done through the host).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store, StoreLimitsBuilder, UpdateDeadline};

use super::host::{Inference, State, TokenSink};
use super::{Canceller, Generation, LlmConfig, LlmError, Message, ModelInfo, Sampling};
use crate::compute::{Backend, Stats};

/// The guest component, built by `core/build.rs` from `inference-guest/`.
const GUEST: &[u8] = include_bytes!(env!("MURMUR_GUEST_WASM"));
/// SHA-256 of [`GUEST`], naming its compiled form in the cache.
const GUEST_SHA256: &str = env!("MURMUR_GUEST_SHA256");
/// How often the epoch advances (the interrupt latency).
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A Wasmtime engine with the compiled guest, shared by every session of the process.
pub struct Sandbox {
    engine: Engine,
    component: Component,
    linker: Linker<State>,
}

fn runtime(e: impl std::fmt::Display) -> LlmError {
    LlmError::Runtime(e.to_string())
}

fn trap(e: wasmtime::Error) -> LlmError {
    LlmError::Trap(format!("{e:#}"))
}

impl Sandbox {
    /// The process-wide sandbox for Murmur's model runtime, compiled (or loaded from the cache)
    /// on first use.
    pub fn shared() -> Result<Arc<Self>, LlmError> {
        static SHARED: OnceLock<Result<Arc<Sandbox>, String>> = OnceLock::new();
        SHARED.get_or_init(|| Sandbox::new(None).map(Arc::new).map_err(|e| e.to_string())).clone().map_err(LlmError::Runtime)
    }

    /// A sandbox for another component of the same `inference` world (Murmur's sandbox tests
    /// run a hostile guest through it), with the same grants and limits as the real one.
    pub fn with_guest(wasm: &[u8]) -> Result<Arc<Self>, LlmError> {
        Sandbox::new(Some(wasm)).map(Arc::new)
    }

    fn new(guest: Option<&[u8]>) -> Result<Self, LlmError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(runtime)?;
        let component = match guest {
            Some(wasm) => Component::new(&engine, wasm).map_err(runtime)?,
            None => load_component(&engine)?,
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(runtime)?;
        Inference::add_to_linker::<State, wasmtime::component::HasSelf<State>>(&mut linker, |s| s).map_err(runtime)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("murmur-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(runtime)?;
        Ok(Self { engine, component, linker })
    }

    /// A fresh guest instance with `model` loaded, running its math on `backend`.
    pub(super) fn start(
        &self,
        cfg: &LlmConfig,
        model: Arc<crate::compute::ModelFile>,
        backend: Box<dyn Backend>,
        canceller: &Canceller,
    ) -> Result<GuestInstance, LlmError> {
        let limits = StoreLimitsBuilder::new().memory_size(cfg.guest_memory).trap_on_grow_failure(true).build();
        let mut store = Store::new(&self.engine, State::new(model, backend, limits, cfg.host_memory));
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        let interrupt = Arc::clone(&canceller.interrupt);
        let stall_limit = cfg.stall_limit;
        store.epoch_deadline_callback(move |store| {
            if interrupt.load(Ordering::SeqCst) {
                return Ok(UpdateDeadline::Interrupt);
            }
            let stalled = store.data().last_progress.elapsed();
            if stalled > stall_limit {
                return Err(wasmtime::Error::msg(format!(
                    "it ran for {:.1} s without getting anything done (the limit is {:.1} s), so it was stopped",
                    stalled.as_secs_f64(),
                    stall_limit.as_secs_f64()
                )));
            }
            Ok(UpdateDeadline::Continue(1))
        });
        let bindings = Inference::instantiate(&mut store, &self.component, &self.linker).map_err(runtime)?;
        store.data_mut().last_progress = Instant::now();
        let loaded = bindings.murmur_llm_llm().call_load(&mut store, cfg.context, cfg.batch);
        let info = outcome(&store, loaded)?;
        Ok(GuestInstance { store, bindings, info })
    }
}

/// Where the compiled guest is cached (Wasmtime rejects a file compiled by another engine
/// build, and it is then recompiled).
fn cache_path() -> PathBuf {
    let short = &GUEST_SHA256[..16];
    crate::paths::cache_dir().join("guest").join(format!("inference-{short}.cwasm"))
}

/// Loads the compiled guest from the cache, or compiles and caches it (a few seconds, once).
fn load_component(engine: &Engine) -> Result<Component, LlmError> {
    let path = cache_path();
    if path.exists() {
        // SAFETY: the file is one this function wrote for this exact guest and engine version;
        // Wasmtime still checks its header and engine compatibility.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok(c),
            Err(e) => tracing::warn!(path = %path.display(), "ignoring the cached guest: {e}"),
        }
    }
    tracing::info!("compiling the model runtime (once per build)");
    let component = Component::new(engine, GUEST).map_err(runtime)?;
    let cached = component.serialize().map_err(runtime).and_then(|bytes| {
        let dir = path.parent().expect("cache path has a parent");
        std::fs::create_dir_all(dir).map_err(runtime)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(runtime)?;
        std::fs::rename(&tmp, &path).map_err(runtime)?;
        remove_stale_guests(dir, &path);
        Ok(())
    });
    if let Err(e) = cached {
        tracing::warn!("could not cache the compiled guest: {e}");
    }
    Ok(component)
}

/// Deletes the compiled guests in `dir` other than `current`: each build of Murmur compiles its
/// own (12 MB), and the older ones are never loaded again.
fn remove_stale_guests(dir: &Path, current: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path != current && name.starts_with("inference-") && name.ends_with(".cwasm") {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(path = %path.display(), "removed an older build's compiled guest"),
                Err(e) => tracing::warn!(path = %path.display(), "could not remove an older compiled guest: {e}"),
            }
        }
    }
}

/// One guest instance and its store.
pub(super) struct GuestInstance {
    store: Store<State>,
    bindings: Inference,
    pub(super) info: ModelInfo,
}

/// A guest call's outcome in the host's terms: a failed device wins over whatever the guest made
/// of it, so the caller can fall back.
fn outcome<T, E: Into<LlmError>>(store: &Store<State>, result: wasmtime::Result<Result<T, E>>) -> Result<T, LlmError> {
    if let Some(lost) = &store.data().device_lost {
        return Err(LlmError::DeviceLost(lost.clone()));
    }
    if store.data().model_changed {
        return Err(LlmError::Changed(store.data().model_path().to_path_buf()));
    }
    result.map_err(trap)?.map_err(Into::into)
}

impl GuestInstance {
    pub(super) fn set_sink(&mut self, sink: Option<TokenSink>) {
        self.store.data_mut().sink = sink;
    }

    /// The backend's name, device and counters.
    pub(super) fn backend(&self) -> (&'static str, String, Stats) {
        let b = self.store.data().backend();
        (b.name(), b.device(), b.stats())
    }

    /// The backend's device time per kernel.
    pub(super) fn profile(&self) -> Vec<crate::compute::KernelTime> {
        self.store.data().backend().profile()
    }

    pub(super) fn tokenize(&mut self, text: &str, parse_special: bool) -> Result<Vec<u32>, LlmError> {
        self.store.data_mut().last_progress = Instant::now();
        let r = self.bindings.murmur_llm_llm().call_tokenize(&mut self.store, text, parse_special);
        outcome(&self.store, r)
    }

    pub(super) fn chat(&mut self, messages: &[Message], sampling: &Sampling) -> Result<Generation, LlmError> {
        self.store.data_mut().last_progress = Instant::now();
        let r = self.bindings.murmur_llm_llm().call_chat(&mut self.store, messages, sampling);
        outcome(&self.store, r)
    }

    pub(super) fn complete(&mut self, prompt: &str, sampling: &Sampling) -> Result<Generation, LlmError> {
        self.store.data_mut().last_progress = Instant::now();
        let r = self.bindings.murmur_llm_llm().call_complete(&mut self.store, prompt, sampling);
        outcome(&self.store, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_builds_compiled_guest_is_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let keep = ["inference-new.cwasm", "inference-new.tmp42", "other.cwasm", "notes.txt"];
        for name in keep.iter().chain(&["inference-old.cwasm", "inference-older.cwasm"]) {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_stale_guests(dir.path(), &dir.path().join("inference-new.cwasm"));
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        let mut want: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(left, want);
    }
}
