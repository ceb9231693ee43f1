//! A hostile guest for Murmur's sandbox tests. It exports the same `inference` world as the real
//! runtime, so the host loads it like a model runtime; `tokenize(case)` runs the attack named
//! `case` and answers with a report, one `op: outcome` line per call it made, where the outcome
//! is `ok`, or the host's `compute-error` (so the test, not this guest, judges each answer).
//! Attacks that the host can only answer by stopping the guest (forged handles, spinning,
//! hogging memory) simply trap.

use std::cell::RefCell;
use std::fmt::Debug;

use bindings::exports::murmur::llm::llm::{Generation, Guest, Message, ModelInfo, RequestError, Sampling};
use bindings::murmur::llm::compute::{self, Dtype, Nonlinearity, RopeStyle, Tensor};

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "inference",
    });
}

thread_local! {
    /// Tensors kept alive between calls (the `plant` case).
    static KEPT: RefCell<Vec<Tensor>> = const { RefCell::new(Vec::new()) };
}

/// The call log a case returns.
#[derive(Default)]
struct Report(Vec<String>);

impl Report {
    fn log<T: Debug, E: Debug>(&mut self, op: &str, r: &Result<T, E>) {
        let outcome = match r {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{e:?}"),
        };
        self.0.push(format!("{op}: {outcome}"));
    }

    fn text(self) -> String {
        self.0.join("\n")
    }
}

fn act(rows: u32, cols: u32) -> Tensor {
    compute::activation(rows, cols).expect("a small activation")
}

/// Reads past the file, at absurd offsets, and more than any read should return.
fn read_model(r: &mut Report) {
    let size = compute::model_size();
    r.log("read past the end", &compute::read_model(size - 1, 2));
    r.log("read at u64::MAX", &compute::read_model(u64::MAX, 1));
    r.log("read wrapping around", &compute::read_model(u64::MAX - 1, 16));
    r.log("read 4 GiB", &compute::read_model(0, u32::MAX));
}

/// Weights outside the file, of impossible sizes, and of broken block shapes.
fn weights(r: &mut Report) {
    let size = compute::model_size();
    r.log("weight past the end", &compute::weight(Dtype::F32, 1, 4, size - 8));
    r.log("weight at u64::MAX", &compute::weight(Dtype::F32, 1, 1, u64::MAX));
    r.log("weight of u32::MAX x u32::MAX", &compute::weight(Dtype::Q80, u32::MAX, u32::MAX - 31, 0));
    r.log("weight of no rows", &compute::weight(Dtype::F32, 0, 4, 0));
    r.log("weight with a partial block", &compute::weight(Dtype::Q41, 1, 33, 0));
}

/// Activations that are empty, overflow, or exceed the host cap.
fn activations(r: &mut Report) {
    r.log("activation of no rows", &compute::activation(0, 8));
    r.log("activation of u32::MAX x u32::MAX", &compute::activation(u32::MAX, u32::MAX));
    r.log("activation of 16 GiB", &compute::activation(65_536, 65_536));
}

/// Allocates until the host refuses, then frees everything and allocates again.
fn flood(r: &mut Report, what: &str, mut make: impl FnMut() -> Result<Tensor, compute::ComputeError>) {
    let mut held = Vec::new();
    let refusal = loop {
        match make() {
            Ok(t) if held.len() < 1_000_000 => held.push(t),
            Ok(_) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    r.log(&format!("{what} after {}", held.len()), &refusal);
    drop(held);
    r.log(&format!("{what} once freed"), &make());
}

/// Ops on tensors of the wrong kind, shape, row or size, and ops that alias their output.
fn misuse(r: &mut Report) {
    let size = compute::model_size();
    let w = compute::weight(Dtype::F32, 4, 8, 0).expect("a small weight");
    let norm = compute::weight(Dtype::F32, 1, 8, 0).expect("a small weight");
    let x = act(2, 8);
    let y = act(2, 4);
    let wide = act(2, 16);
    let logits = act(1, 8);
    let y_norm = compute::weight(Dtype::F32, 1, 3, 0).expect("a small weight");
    let wide2 = act(2, 16);
    r.log("embed from an activation", &compute::embed(&x, &[0], 1.0, &y));
    r.log("matmul by an activation", &compute::matmul(&x, &x, 1, &y, false));
    r.log("rms-norm of a weight", &compute::rms_norm(&w, &norm, 1e-5, 1, &x, false));
    r.log("embed of a token past the table", &compute::embed(&w, &[4], 1.0, &x));
    r.log("embed of no tokens", &compute::embed(&w, &[], 1.0, &x));
    r.log("embed of more tokens than rows", &compute::embed(&w, &[0, 1, 2], 1.0, &x));
    r.log("matmul of mismatched widths", &compute::matmul(&w, &wide, 1, &y, false));
    r.log("matmul of more rows than the input", &compute::matmul(&w, &x, 3, &y, false));
    r.log("matmul into its own input", &compute::matmul(&w, &x, 1, &x, false));
    r.log("rms-norm of no rows", &compute::rms_norm(&x, &norm, 1e-5, 0, &wide, false));
    r.log("rms-norm into its input", &compute::rms_norm(&x, &norm, 1e-5, 1, &x, false));
    r.log("glu into its gate", &compute::glu(&x, &wide, Nonlinearity::Silu, 1, &x));
    r.log("rms-norm by a weight that does not divide the row", &compute::rms_norm(&wide, &y_norm, 1e-5, 1, &wide2, false));
    r.log("embed scaled by NaN", &compute::embed(&w, &[0], f32::NAN, &x));
    r.log("rope of an odd head", &compute::rope(&x, 3, 0, 1, 10_000.0, RopeStyle::Interleaved, None));
    r.log("rope of a head wider than the row", &compute::rope(&x, 16, 0, 1, 10_000.0, RopeStyle::Halves, None));
    r.log("rope with factors of the wrong width", &compute::rope(&x, 8, 0, 1, 10_000.0, RopeStyle::Halves, Some(&norm)));
    r.log("rope with factors from an activation", &compute::rope(&x, 8, 0, 1, 10_000.0, RopeStyle::Halves, Some(&y)));
    r.log("copy of a row past the end", &compute::copy_row(&x, 2, &wide, 0));
    r.log("copy into a row past the end", &compute::copy_row(&x, 0, &wide, u32::MAX));
    r.log("penalty of NaN", &compute::penalize(&logits, 0, &[1, 2], f32::NAN));
    r.log("penalty on a row past the end", &compute::penalize(&logits, 1, &[1], 1.1));
    r.log("penalty of tokens past the row", &compute::penalize(&logits, 0, &[8, u32::MAX], 1.1));
    r.log("mask of a row past the end", &compute::mask(&logits, 1, &[u32::MAX]));
    r.log("top-k of a row past the end", &compute::top_k(&logits, 1, 4));
    r.log("top-k of 100000", &compute::top_k(&logits, 0, 100_000));
    let (q, k, v, kc, vc, out) = (act(1, 8), act(1, 8), act(1, 8), act(4, 8), act(4, 8), act(1, 8));
    r.log("attention past the cache", &compute::attention(&q, &k, &v, &kc, &vc, 8, 4, 1, None, &out));
    r.log("attention with shared caches", &compute::attention(&q, &k, &v, &kc, &kc, 8, 0, 1, None, &out));
    r.log("attention into its queries", &compute::attention(&q, &k, &v, &kc, &vc, 8, 0, 1, None, &q));
    r.log("attention of head width 0", &compute::attention(&q, &k, &v, &kc, &vc, 0, 0, 1, None, &out));
    r.log("attention of head width 3", &compute::attention(&q, &k, &v, &kc, &vc, 3, 0, 1, None, &out));
    r.log("attention of an empty window", &compute::attention(&q, &k, &v, &kc, &vc, 8, 0, 1, Some(0), &out));
    // A well-formed op still works after all that.
    r.log("a valid matmul", &compute::matmul(&w, &x, 1, &y, false));
    r.log("a valid read", &compute::read_model(size - 4, 4));
}

/// Uses a handle number this instance was never given.
fn forged_handle() {
    // SAFETY: deliberately not a handle this instance owns; the canonical ABI must trap.
    let forged = unsafe { Tensor::from_handle(0x00de_ad00) };
    let _ = compute::top_k(&forged, 0, 1);
}

/// Drops a tensor, then uses its handle.
fn use_after_drop() {
    let t = act(1, 8);
    let handle = t.handle();
    drop(t);
    // SAFETY: deliberately stale; the canonical ABI must trap.
    let stale = unsafe { Tensor::from_handle(handle) };
    let _ = compute::top_k(&stale, 0, 1);
}

/// Fills a tensor with the model file's first floats and keeps it; returns its handle.
fn plant() -> Vec<u32> {
    let table = compute::weight(Dtype::F32, 1, 8, 0).expect("a small weight");
    let secret = act(1, 8);
    compute::embed(&table, &[0], 1.0, &secret).expect("an embed");
    let handle = secret.handle();
    KEPT.with_borrow_mut(|k| k.extend([table, secret]));
    vec![handle]
}

/// Makes one tensor of its own, then reads the top-8 of each handle number in `handles`
/// (another session's) and returns the logits' bits.
fn probe(handles: &str) -> Vec<u32> {
    let own = act(1, 8);
    let mut bits = Vec::new();
    for h in handles.split(',').filter_map(|h| h.parse().ok()) {
        // SAFETY: deliberately a number from another session; the canonical ABI must either
        // trap or resolve it in this instance's own table.
        let t = unsafe { Tensor::from_handle(h) };
        if let Ok(best) = compute::top_k(&t, 0, 8) {
            bits.extend(best.iter().map(|c| c.logit.to_bits()));
        }
        std::mem::forget(t);
    }
    drop(own);
    bits
}

/// Runs forever without calling the host.
fn spin() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Grows linear memory until something gives.
fn hog() -> Vec<u32> {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        chunks.push(vec![1u8; 16 << 20]);
        std::hint::black_box(&chunks);
    }
}

/// Tries every capability WASI could lend: the environment, arguments, preopened directories,
/// files by path, name lookup and TCP/UDP to `port` on the loopback.
fn capabilities(r: &mut Report, port: u16) {
    use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    let env = wasip2::cli::environment::get_environment();
    r.0.push(format!("environment: {} variables", env.len()));
    r.0.push(format!("arguments: {}", wasip2::cli::environment::get_arguments().len()));
    r.0.push(format!("preopened directories: {}", wasip2::filesystem::preopens::get_directories().len()));
    r.log("std open /etc/passwd", &std::fs::read("/etc/passwd"));
    r.log("std list /", &std::fs::read_dir("/"));
    r.log("std create /tmp/murmur-escape", &std::fs::write("/tmp/murmur-escape", b"x"));
    let net = wasip2::sockets::instance_network::instance_network();
    r.log("resolve localhost", &wasip2::sockets::ip_name_lookup::resolve_addresses(&net, "localhost"));
    let to = IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (127, 0, 0, 1) });
    match wasip2::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Ok(sock) => {
            let started = sock.start_connect(&net, to);
            r.log("tcp connect", &started);
            if started.is_ok() {
                sock.subscribe().block();
                r.log("tcp connect finished", &sock.finish_connect().map(|_| ()));
            }
        }
        Err(e) => r.log("tcp socket", &Err::<(), _>(e)),
    }
    match wasip2::sockets::udp_create_socket::create_udp_socket(IpAddressFamily::Ipv4) {
        Ok(sock) => {
            let any = IpSocketAddress::Ipv4(Ipv4SocketAddress { port: 0, address: (0, 0, 0, 0) });
            r.log("udp bind", &sock.start_bind(&net, any));
        }
        Err(e) => r.log("udp socket", &Err::<(), _>(e)),
    }
}

struct Component;

impl Guest for Component {
    fn load(_context_length: u32, _batch: u32) -> Result<ModelInfo, String> {
        Ok(ModelInfo {
            architecture: "hostile".into(),
            name: "hostile".into(),
            context_length: 1,
            layers: 0,
            embedding: 0,
            heads: 0,
            kv_heads: 0,
            vocab_size: 0,
        })
    }

    fn tokenize(case: String, _parse_special: bool) -> Result<Vec<u32>, String> {
        let mut r = Report::default();
        let (name, arg) = case.split_once(':').unwrap_or((&case, ""));
        match name {
            "read-model" => read_model(&mut r),
            "weights" => weights(&mut r),
            "activations" => activations(&mut r),
            "flood-activations" => flood(&mut r, "1 MiB activation", || compute::activation(256, 1024)),
            "flood-handles" => flood(&mut r, "1x1 activation", || compute::activation(1, 1)),
            "flood-weights" => {
                let cols = (compute::model_size() / 4).min(1 << 20) as u32;
                flood(&mut r, "whole-file weight", || compute::weight(Dtype::F32, 1, cols, 0))
            }
            "misuse" => misuse(&mut r),
            "forged-handle" => forged_handle(),
            "use-after-drop" => use_after_drop(),
            "plant" => return Ok(plant()),
            "probe" => return Ok(probe(arg)),
            "spin" => spin(),
            "hog" => return Ok(hog()),
            "capabilities" => capabilities(&mut r, arg.parse().unwrap_or(9)),
            "ping" => return Ok(vec![1]),
            other => return Err(format!("unknown case {other}")),
        }
        Err(r.text())
    }

    fn chat(_messages: Vec<Message>, _sampling: Sampling) -> Result<Generation, RequestError> {
        Err(RequestError::Failed("a hostile guest does not chat".into()))
    }

    fn complete(_prompt: String, _sampling: Sampling) -> Result<Generation, RequestError> {
        Err(RequestError::Failed("a hostile guest does not complete".into()))
    }
}

bindings::export!(Component with_types_in bindings);
