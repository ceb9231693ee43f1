//! Audio out: speech queued for the speakers (rodio on cpal) or written to a WAV file, and
//! stoppable at once.
//!
//! Every queued chunk carries the *epoch* it was made for; [`AudioOut::stop`] empties the queue
//! and starts a new epoch under the same lock, so audio synthesized for an interrupted reply can
//! never slip out after the stop.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cpal::traits::DeviceTrait;

use super::{find_device, AudioError, Direction};
use crate::sync::lock;

/// Called with the instant a chunk's first sample went out.
pub type OnStart = Box<dyn FnOnce(Instant) + Send>;

/// Samples the speaker's source takes from the queue at a time (about 12 ms at 22 kHz).
const PULL: usize = 256;

struct Chunk {
    samples: Vec<f32>,
    on_start: Option<OnStart>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Chunk>,
    /// Speech samples the speaker's source has taken but not yet played.
    in_flight: usize,
    /// Samples that went out (played or written).
    played: u64,
    wav: Option<hound::WavWriter<BufWriter<File>>>,
}

struct Shared {
    state: Mutex<State>,
    /// Set by the output stream's error callback: why the device stopped.
    failed: Mutex<Option<String>>,
    /// Changes on every [`AudioOut::stop`]; read without the lock by the audio callback.
    epoch: AtomicU64,
    idle: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// Where speech is played: the speakers or a file.
pub struct AudioOut {
    shared: Arc<Shared>,
    rate: u32,
    target: String,
    /// Keeps the output stream (which must stay on one thread) open until dropped.
    _stream: Option<mpsc::Sender<()>>,
}

impl AudioOut {
    /// Plays on `device` (by name), or the default output device, at `rate` samples per second.
    pub fn speaker(device: Option<&str>, rate: u32) -> Result<Self, AudioError> {
        let dev = find_device(Direction::Output, device).map_err(AudioError::NoOutput)?;
        let name = dev.name().unwrap_or_else(|_| "default".into());
        let shared = Arc::new(Shared { state: Mutex::default(), failed: Mutex::default(), epoch: AtomicU64::new(0), idle: Condvar::new() });
        let (opened_tx, opened_rx) = mpsc::channel();
        let (keep_tx, keep_rx) = mpsc::channel::<()>();
        let source = QueueSource { shared: Arc::clone(&shared), rate, buffer: VecDeque::new(), epoch: 0 };
        let watcher = Arc::clone(&shared);
        let on_error = move |e: cpal::StreamError| {
            // A dead stream reports again on every poll: the first report is the one to keep.
            let mut failed = lock(&watcher.failed);
            if failed.is_none() {
                tracing::warn!("audio output failed: {e}");
                *failed = Some(e.to_string());
                watcher.idle.notify_all();
            }
        };
        std::thread::Builder::new()
            .name("murmur-speaker".into())
            .spawn(move || {
                let opened = rodio::OutputStreamBuilder::from_device(dev).and_then(|b| b.with_error_callback(on_error).open_stream());
                match opened {
                    Ok(mut stream) => {
                        stream.log_on_drop(false);
                        stream.mixer().add(source);
                        let _ = opened_tx.send(Ok(()));
                        // Hold the stream until the `AudioOut` is dropped.
                        let _ = keep_rx.recv();
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| AudioError::NoOutput(format!("cannot start the audio thread: {e}")))?;
        match opened_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(AudioError::NoOutput(format!("the output device '{name}' could not be opened: {reason}"))),
            Err(_) => return Err(AudioError::NoOutput(format!("the output device '{name}' could not be opened"))),
        }
        tracing::info!(device = %name, rate, "speaker open");
        Ok(Self { shared, rate, target: name, _stream: Some(keep_tx) })
    }

    /// Writes 16-bit mono WAV at `rate` to `path` instead of playing.
    pub fn wav(path: &Path, rate: u32) -> Result<Self, AudioError> {
        let spec = hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let writer = hound::WavWriter::create(path, spec).map_err(|e| file_error(path, e))?;
        let state = State { wav: Some(writer), ..State::default() };
        let shared = Arc::new(Shared { state: Mutex::new(state), failed: Mutex::default(), epoch: AtomicU64::new(0), idle: Condvar::new() });
        Ok(Self { shared, rate, target: path.display().to_string(), _stream: None })
    }

    /// The sample rate chunks are queued at.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The device or file written to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The current epoch: what [`AudioOut::queue`] needs to be heard.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::SeqCst)
    }

    /// Queues `samples` (mono, at [`AudioOut::rate`]) behind what is queued, if `epoch` is still
    /// current; `on_start` is called when its first sample goes out. Returns false (and drops
    /// the samples) when a [`AudioOut::stop`] came in between.
    pub fn queue(&self, epoch: u64, samples: &[f32], on_start: Option<OnStart>) -> Result<bool, AudioError> {
        self.check()?;
        let mut state = self.shared.lock();
        if self.epoch() != epoch {
            return Ok(false);
        }
        if let Some(wav) = state.wav.as_mut() {
            for &s in samples {
                wav.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).map_err(|e| file_error(Path::new(&self.target), e))?;
            }
            state.played += samples.len() as u64;
            drop(state);
            if let Some(f) = on_start {
                f(Instant::now());
            }
        } else {
            state.queue.push_back(Chunk { samples: samples.to_vec(), on_start });
        }
        Ok(true)
    }

    /// Silences the output at once and drops everything queued; starts a new epoch. Returns
    /// the seconds of audio that were queued and will now never be heard.
    pub fn stop(&self) -> f64 {
        let mut state = self.shared.lock();
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        let dropped = state.in_flight + state.queue.iter().map(|c| c.samples.len()).sum::<usize>();
        state.queue.clear();
        state.in_flight = 0;
        self.shared.idle.notify_all();
        dropped as f64 / f64::from(self.rate)
    }

    /// Why the output device stopped working, if it did.
    fn failure(&self) -> Option<String> {
        lock(&self.shared.failed).clone()
    }

    /// An error if the output device stopped working (unplugged, or its server went away),
    /// saying how much had been heard.
    pub fn check(&self) -> Result<(), AudioError> {
        match self.failure() {
            Some(why) => Err(AudioError::NoOutput(format!(
                "the output device '{}' stopped after {:.2} s of speech: {why}",
                self.target,
                self.played_seconds()
            ))),
            None => Ok(()),
        }
    }

    /// Blocks until everything queued in `epoch` has gone out, or a stop ended it, or the device
    /// failed; returns the instant it ended.
    pub fn drain(&self, epoch: u64) -> Instant {
        let mut state = self.shared.lock();
        while self.epoch() == epoch && (!state.queue.is_empty() || state.in_flight > 0) && self.failure().is_none() {
            state = self.shared.idle.wait_timeout(state, Duration::from_millis(50)).unwrap_or_else(|e| e.into_inner()).0;
        }
        Instant::now()
    }

    /// Seconds of audio that went out so far.
    pub fn played_seconds(&self) -> f64 {
        self.shared.lock().played as f64 / f64::from(self.rate)
    }

    /// Finishes the WAV file (its header holds the length); nothing to do for speakers.
    pub fn finish(&self) -> Result<(), AudioError> {
        let wav = self.shared.lock().wav.take();
        match wav {
            Some(w) => w.finalize().map_err(|e| file_error(Path::new(&self.target), e)),
            None => Ok(()),
        }
    }
}

impl Drop for AudioOut {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::warn!("{e}");
        }
    }
}

fn file_error(path: &Path, e: hound::Error) -> AudioError {
    AudioError::File { path: PathBuf::from(path), reason: e.to_string() }
}

/// The endless source the speaker plays: queued speech, silence in between.
struct QueueSource {
    shared: Arc<Shared>,
    rate: u32,
    buffer: VecDeque<f32>,
    /// The epoch `buffer` was taken in.
    epoch: u64,
}

impl QueueSource {
    /// Takes the next samples from the queue; empty when nothing is queued.
    fn refill(&mut self) {
        let mut started = Vec::new();
        {
            let mut state = self.shared.lock();
            self.epoch = self.shared.epoch.load(Ordering::SeqCst);
            while self.buffer.len() < PULL {
                let Some(chunk) = state.queue.front_mut() else { break };
                if let Some(f) = chunk.on_start.take() {
                    started.push(f);
                }
                let n = (PULL - self.buffer.len()).min(chunk.samples.len());
                self.buffer.extend(chunk.samples.drain(..n));
                if chunk.samples.is_empty() {
                    state.queue.pop_front();
                }
            }
            state.played += state.in_flight as u64;
            state.in_flight = self.buffer.len();
            if self.buffer.is_empty() {
                self.shared.idle.notify_all();
                // Silence until the next look at the queue.
                self.buffer.resize(PULL, 0.0);
            }
        }
        let now = Instant::now();
        for f in started {
            f(now);
        }
    }
}

impl Iterator for QueueSource {
    type Item = f32;

    fn next(&mut self) -> Option<f32> {
        if self.epoch != self.shared.epoch.load(Ordering::Relaxed) {
            self.buffer.clear();
        }
        if self.buffer.is_empty() {
            self.refill();
        }
        Some(self.buffer.pop_front().unwrap_or(0.0))
    }
}

impl rodio::Source for QueueSource {
    fn current_span_len(&self) -> Option<usize> {
        None
    }

    fn channels(&self) -> rodio::ChannelCount {
        1
    }

    fn sample_rate(&self) -> rodio::SampleRate {
        self.rate
    }

    fn total_duration(&self) -> Option<Duration> {
        None
    }
}
