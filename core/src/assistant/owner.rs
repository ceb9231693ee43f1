//! The owner thread: the only place the state changes. It takes commands, starts and interrupts
//! turns, and turns the workers' progress into events.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::brain::{self, Brain, Preview, Question};
use super::listen_ahead::PauseDetector;
use super::voice::Voice;
use super::{ms, AssistantConfig, AssistantError, Capture, CaptureFactory, Command, Event, Output, State, Timeline};
use crate::audio::AudioOut;
use crate::llm::{Generation, Timings};
use crate::speech::Transcript;

/// What reaches the owner.
pub(super) enum Msg {
    /// From the user.
    Command(Command),
    /// The input level (RMS of the last 50 ms), about 20 times a second.
    Level(f32),
    /// From a worker, about a turn.
    Progress(u64, Progress),
    /// A request from the OpenAI server, for the brain's engine.
    Serve(crate::server::Job),
    /// The [`super::Assistant`] is being dropped.
    Shutdown,
}

/// A worker's report on a turn.
pub(super) enum Progress {
    /// The question was transcribed; `ahead`: at a pause before the release.
    Heard {
        result: Result<Transcript, String>,
        at: Instant,
        ahead: bool,
    },
    Token(String, Instant),
    Sentence(String, Instant),
    Reply(Result<(Generation, Timings), String>, Instant),
    AudioStarted(Instant),
    AudioDone {
        at: Instant,
        seconds: f64,
    },
    /// Something the user should know that did not stop the turn.
    Notice(String),
}

/// The turn in progress.
struct Turn {
    id: u64,
    cancel: Arc<AtomicBool>,
    /// End of speech, or the typed question.
    start: Instant,
    timeline: Timeline,
    replied: bool,
    spoken: bool,
}

struct Owner {
    state: State,
    events: Sender<Event>,
    capture: Result<Box<dyn Capture>, String>,
    brain: Sender<brain::Work>,
    /// Pauses in the recording being made.
    pauses: PauseDetector,
    /// How many previews were sent (shared with the brain, which skips superseded ones).
    previews: Arc<AtomicU64>,
    /// The last preview of the recording being made.
    preview: Option<u64>,
    out: Option<Arc<AudioOut>>,
    turns: u64,
    turn: Option<Turn>,
}

/// Opens the output, loads the models on their threads, and starts the owner. Returns it and
/// where the LLM runs.
pub(super) fn spawn(
    config: AssistantConfig,
    capture: CaptureFactory,
    me: Sender<Msg>,
    inbox: Receiver<Msg>,
    events: Sender<Event>,
) -> Result<(JoinHandle<()>, String), AssistantError> {
    let notice = |message: String| {
        // Logged quietly: the notice itself is what the user sees.
        tracing::info!("{message}");
        let _ = events.send(Event::Notice { message });
    };
    // The models load on the brain thread while the voice starts here: a neural voice takes
    // seconds to start on a small CPU, and so does the LLM.
    let (brain_tx, brain_rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (voice_tx, voice_rx) = mpsc::channel::<Option<Sender<super::voice::Job>>>();
    let brain_config = config.clone();
    let brain_me = me.clone();
    let previews = Arc::new(AtomicU64::new(0));
    let brain_previews = Arc::clone(&previews);
    let brain_thread = thread("murmur-brain", move || match Brain::load(&brain_config, brain_me, brain_previews) {
        Ok(mut brain) => {
            let _ = ready_tx.send(Ok(brain.device()));
            // The voice is known before the owner starts, so before any job arrives.
            brain.speak_to(voice_rx.recv().ok().flatten());
            brain.run(brain_rx);
        }
        Err(e) => {
            let _ = ready_tx.send(Err(e));
        }
    })?;

    let voice = || {
        let loaded = config.voice.synthesizer()?;
        if let Some(message) = loaded.fallback_notice() {
            notice(message);
        }
        Ok::<_, AssistantError>(loaded.synthesizer)
    };
    let (out, tts) = match &config.output {
        Output::Silent => (None, None),
        Output::Speaker(device) => {
            let tts = voice()?;
            match AudioOut::speaker(device.as_deref(), tts.sample_rate()) {
                Ok(out) => (Some(Arc::new(out)), Some(tts)),
                Err(e) => {
                    notice(e.to_string());
                    (None, None)
                }
            }
        }
        Output::Wav(path) => {
            let tts = voice()?;
            (Some(Arc::new(AudioOut::wav(path, tts.sample_rate())?)), Some(tts))
        }
    };
    let (voice_jobs, voice_thread) = match (&out, tts) {
        (Some(out), Some(tts)) => {
            let (tx, rx) = mpsc::channel();
            let voice = Voice { tts, out: Arc::clone(out), owner: me.clone() };
            (Some(tx), Some(thread("murmur-voice", move || voice.run(rx))?))
        }
        _ => (None, None),
    };
    let _ = voice_tx.send(voice_jobs);
    let device = ready_rx.recv().map_err(|_| AssistantError::Start("the model thread stopped while loading".into()))??;

    thread("murmur-assistant", move || {
        let mut capture = capture().map_err(|e| {
            let message = e.to_string();
            let _ = events.send(Event::Notice { message: message.clone() });
            message
        });
        if let Some(levels) = capture.as_mut().ok().and_then(|c| c.levels()) {
            let meter = move || {
                for rms in levels {
                    if me.send(Msg::Level(rms)).is_err() {
                        break;
                    }
                }
            };
            if let Err(e) = thread("murmur-meter", meter) {
                tracing::warn!("no level meter: {e}");
            }
        }
        let mut owner = Owner {
            state: State::Idle,
            events,
            capture,
            brain: brain_tx,
            pauses: PauseDetector::default(),
            previews,
            preview: None,
            out,
            turns: 0,
            turn: None,
        };
        for msg in inbox {
            match msg {
                Msg::Command(c) => owner.command(c),
                Msg::Level(rms) => owner.level(rms),
                Msg::Progress(turn, p) => owner.progress(turn, p),
                // Behind the turns already handed over, ahead of later ones.
                Msg::Serve(job) => {
                    let _ = owner.brain.send(brain::Work::Serve(job));
                }
                Msg::Shutdown => break,
            }
        }
        // Stop the turn, hang up on the brain (which hangs up on the voice), and wait for both,
        // so models are freed and a WAV file is complete when the assistant is gone.
        owner.interrupt();
        drop(owner);
        for worker in [Some(brain_thread), voice_thread].into_iter().flatten() {
            let _ = worker.join();
        }
    })
    .map(|owner| (owner, device))
}

fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, AssistantError> {
    std::thread::Builder::new().name(name.into()).spawn(f).map_err(|e| AssistantError::Start(e.to_string()))
}

impl Owner {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn set(&mut self, state: State) {
        if self.state != state {
            tracing::debug!(?state, "assistant state");
            self.state = state;
            self.emit(Event::State { state });
        }
    }

    fn fail(&mut self, turn: Option<u64>, message: String) {
        tracing::warn!(?turn, "{message}");
        self.emit(Event::Error { turn, message });
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Press => {
                if self.state == State::Listening {
                    return;
                }
                self.interrupt();
                let pressed = match self.capture.as_mut() {
                    Ok(c) => c.press().map_err(|e| e.to_string()),
                    Err(why) => Err(why.clone()),
                };
                match pressed {
                    Ok(()) => {
                        self.pauses = PauseDetector::default();
                        self.preview = None;
                        self.set(State::Listening);
                    }
                    Err(why) => {
                        self.fail(None, why);
                        self.set(State::Idle);
                    }
                }
            }
            Command::Release => {
                if self.state != State::Listening {
                    return;
                }
                let end_of_speech = Instant::now();
                match self.release() {
                    Ok(audio) => self.begin(Question::Audio(audio), end_of_speech, State::Transcribing),
                    Err(why) => {
                        self.fail(None, why);
                        self.set(State::Idle);
                    }
                }
            }
            Command::Ask(text) => {
                let asked = Instant::now();
                self.interrupt();
                if self.state == State::Listening {
                    let _ = self.release();
                }
                if text.trim().is_empty() {
                    self.fail(None, "type a question first".into());
                    self.set(State::Idle);
                } else {
                    self.begin(Question::Text(text), asked, State::Thinking);
                }
            }
            Command::Stop => {
                self.interrupt();
                if self.state == State::Listening {
                    let _ = self.release();
                }
                self.set(State::Idle);
            }
            Command::Converse(messages) => {
                self.command(Command::Stop);
                let _ = self.brain.send(brain::Work::Converse(messages));
            }
            Command::Retune(settings) => {
                let _ = self.brain.send(brain::Work::Retune(settings));
            }
        }
    }

    /// Shows the level while listening, and hands what was said so far to the brain at each
    /// pause (see [`super::listen_ahead`]).
    fn level(&mut self, rms: f32) {
        if self.state != State::Listening {
            return;
        }
        self.emit(Event::Level { rms });
        if !self.pauses.level(rms) {
            return;
        }
        let Some(audio) = self.capture.as_mut().ok().and_then(|c| c.so_far()) else { return };
        let id = self.previews.fetch_add(1, Ordering::SeqCst) + 1;
        if self.brain.send(brain::Work::ListenAhead(Preview { id, audio })).is_ok() {
            self.preview = Some(id);
        }
    }

    /// Ends the recording; a device that failed midway is reported, its audio kept.
    fn release(&mut self) -> Result<Vec<f32>, String> {
        let capture = self.capture.as_mut().map_err(|why| why.clone())?;
        let recording = capture.release(!self.pauses.in_pause()).map_err(|e| e.to_string())?;
        if let Some(why) = recording.interrupted {
            self.emit(Event::Notice { message: format!("the microphone stopped ({why}); using what was recorded") });
        }
        Ok(recording.audio)
    }

    fn begin(&mut self, question: Question, start: Instant, state: State) {
        self.turns += 1;
        let cancel = Arc::new(AtomicBool::new(false));
        let epoch = self.out.as_ref().map_or(0, |o| o.epoch());
        if let Question::Text(text) = &question {
            self.emit(Event::Question { turn: self.turns, text: text.clone(), spoken: false });
        }
        let preview = if matches!(question, Question::Audio(_)) { self.preview.take() } else { None };
        let job = brain::Job { turn: self.turns, question, epoch, cancel: Arc::clone(&cancel), preview };
        if self.brain.send(brain::Work::Turn(job)).is_err() {
            self.fail(None, "the model thread has stopped; restart Murmur".into());
            self.set(State::Idle);
            return;
        }
        self.turn = Some(Turn { id: self.turns, cancel, start, timeline: Timeline::default(), replied: false, spoken: false });
        self.set(state);
    }

    /// Barge-in: silences the audio and cancels the generation of the turn in progress.
    fn interrupt(&mut self) {
        if let Some(turn) = self.turn.take() {
            turn.cancel.store(true, Ordering::SeqCst);
            let unspoken_seconds = self.out.as_ref().map_or(0.0, |out| out.stop());
            tracing::info!(turn = turn.id, unspoken_seconds, "interrupted");
            self.emit(Event::Interrupted { turn: turn.id, unspoken_seconds });
        }
    }

    fn progress(&mut self, id: u64, progress: Progress) {
        // An interrupted turn's reply is still reported (its text so far); nothing else of it.
        if let Progress::Reply(result, _) = &progress {
            match result {
                Ok((g, _)) => self.emit(Event::Reply { turn: id, text: g.text.clone(), stop: g.stop_reason }),
                Err(e) => self.fail(Some(id), e.clone()),
            }
        }
        let Some(turn) = self.turn.as_mut().filter(|t| t.id == id) else { return };
        let (start, t) = (turn.start, &mut turn.timeline);
        match progress {
            Progress::Heard { result: Ok(transcript), at, ahead } => {
                t.transcript_ms = Some(ms(start, at));
                t.heard_ahead = ahead;
                t.speech = Some(transcript.timings);
                self.emit(Event::Question { turn: id, text: transcript.text, spoken: true });
                self.set(State::Thinking);
            }
            Progress::Heard { result: Err(why), .. } => {
                self.turn = None;
                self.fail(Some(id), why);
                self.set(State::Idle);
            }
            Progress::Token(text, at) => {
                t.first_token_ms.get_or_insert(ms(start, at));
                self.emit(Event::Token { turn: id, text });
            }
            Progress::Sentence(text, at) => {
                t.first_sentence_ms.get_or_insert(ms(start, at));
                self.emit(Event::Sentence { turn: id, text });
            }
            Progress::Reply(result, at) => {
                t.reply_ms = Some(ms(start, at));
                if let Ok((g, timings)) = result {
                    t.prompt_tokens = g.prompt_tokens;
                    t.reused_tokens = g.reused_tokens;
                    t.generated_tokens = g.token_ids.len() as u32;
                    t.decode_tps = timings.decode_tps;
                }
                turn.replied = true;
                self.finish_if_done();
            }
            Progress::AudioStarted(at) => {
                t.first_audio_ms.get_or_insert(ms(start, at));
                self.set(State::Speaking);
            }
            Progress::AudioDone { at, seconds } => {
                if seconds > 0.0 {
                    t.last_audio_ms = Some(ms(start, at));
                }
                t.audio_seconds = seconds;
                turn.spoken = true;
                self.finish_if_done();
            }
            Progress::Notice(message) => self.emit(Event::Notice { message }),
        }
    }

    /// Ends the turn once it is generated and (with voice output) spoken.
    fn finish_if_done(&mut self) {
        let voiced = self.out.is_some();
        if let Some(turn) = self.turn.take_if(|t| t.replied && (t.spoken || !voiced)) {
            self.emit(Event::Done { turn: turn.id, timeline: turn.timeline });
            self.set(State::Idle);
        }
    }
}
