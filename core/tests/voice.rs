//! Voice out and the voice turn on the real components: Murmur's Piper voice and espeak-ng, Whisper,
//! the sandboxed LLM, and playback through the default output device. `./dev test` provides that
//! device: a private PulseAudio server whose null sink's monitor `parec` records, so a test can
//! hear what Murmur played.

mod common;

use std::io::Read;
use std::process::{Child, Command as Process, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use murmur_core::assistant::{Assistant, AssistantConfig, Clip, Command, Event, Output, State, TurnSettings, DEFAULT_SYSTEM};
use murmur_core::audio::{read_wav, resample, AudioOut, SAMPLE_RATE};
use murmur_core::llm::{LlmConfig, Sampling, StopReason};
use murmur_core::tts::{Espeak, Piper, PiperFiles, PiperOptions, Synthesizer, TtsError, VoiceConfig};

/// Longest any one wait here may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// Tests that play through the output device take turns (recordings of its monitor would mix),
/// and so does the CPU-heavy round trip: playback that cannot keep up on a loaded 2-core machine
/// underruns, and the recording garbles.
fn speaker() -> MutexGuard<'static, ()> {
    static SPEAKER: Mutex<()> = Mutex::new(());
    SPEAKER.lock().unwrap_or_else(|p| p.into_inner())
}

/// Plain sentences every voice is checked on.
const SENTENCES: [&str; 8] = [
    "The weather is sunny and warm today.",
    "Please remind me to call my mother tomorrow.",
    "The train leaves the station at seven in the morning.",
    "I would like a cup of coffee with milk.",
    "Turn off the lights in the kitchen.",
    "My favorite color is blue.",
    "The capital of France is Paris.",
    "We should go for a walk in the park.",
];

/// The catalog's Piper voice without sampling noise.
fn piper() -> Piper {
    let files = PiperFiles::catalog("joe").expect("the catalog has Joe");
    Piper::load(&files, PiperOptions { deterministic: true, ..PiperOptions::default() })
        .expect("the Piper voice loads (./dev fetches it)")
}

/// Whisper's word errors on `tts` saying [`SENTENCES`].
fn round_trip(tts: &mut dyn Synthesizer) -> (usize, usize) {
    let rate = tts.sample_rate();
    common::word_error_rate(&SENTENCES, |_, s| {
        let audio = tts.synthesize_all(s).expect("synthesis works");
        assert!(audio.len() > rate as usize / 2, "{s:?}: only {} samples", audio.len());
        resample(&audio, rate, SAMPLE_RATE).unwrap()
    })
}

/// Plain sentences spoken by the Piper voice come back from Whisper with a word error rate of at
/// most 10 %, and no worse than espeak-ng's on the same sentences.
#[test]
fn piper_speech_round_trips_through_whisper_at_least_as_well_as_espeak() {
    let _turn = speaker();
    let (piper_wrong, total) = round_trip(&mut piper());
    let (espeak_wrong, _) = round_trip(&mut Espeak::new("en-us", 175).expect("espeak-ng starts"));
    assert!(piper_wrong * 10 <= total, "Piper's WER {piper_wrong}/{total}");
    assert!(piper_wrong <= espeak_wrong, "Piper {piper_wrong}/{total} against espeak-ng {espeak_wrong}/{total}");
}

/// Without noise, the same text gives the same samples, at the voice's own rate, and a faster
/// rate gives shorter speech.
#[test]
fn piper_is_deterministic_at_the_voices_sample_rate() {
    let mut tts = piper();
    assert_eq!(tts.sample_rate(), 22_050, "en_US-joe-medium.onnx.json says 22,050 Hz");
    let sentence = "Please remind me to call my mother tomorrow.";
    let first = tts.synthesize_all(sentence).unwrap();
    assert_eq!(first, tts.synthesize_all(sentence).unwrap());
    let seconds = first.len() as f64 / 22_050.0;
    assert!((1.0..6.0).contains(&seconds), "{seconds} s");
    assert!(first.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    let files = PiperFiles::catalog("joe").unwrap();
    let mut fast = Piper::load(&files, PiperOptions { rate: 350, deterministic: true, ..PiperOptions::default() }).unwrap();
    let quick = fast.synthesize_all(sentence).unwrap().len() as f64 / 22_050.0;
    assert!(quick < seconds * 0.7, "at 350 wpm {quick} s, at 175 wpm {seconds} s");
}

/// A voice or rate espeak-ng does not have is refused by name, as a setting to change (each
/// front end says where the voices are listed).
#[test]
fn unknown_voices_and_rates_are_refused_clearly() {
    let e = Espeak::new("no-such-voice", 175).expect_err("refused");
    assert!(matches!(e, TtsError::Setting(_)) && e.to_string().contains("'no-such-voice'"), "{e}");
    let e = VoiceConfig { voice: "piper:nobody".into(), rate: 175 }.synthesizer().err().expect("refused");
    assert!(matches!(e, TtsError::Setting(_)) && e.to_string().contains("'nobody'"), "{e}");
    assert!(!e.to_string().contains("murmur"), "the library names no command: {e}");
    let e = Espeak::new("en-us", 20).expect_err("refused").to_string();
    assert!(e.contains("20 words per minute") && e.contains("80"), "{e}");
}

/// What `parec` records from the default sink's monitor, 16 kHz mono.
struct Monitor {
    child: Child,
    chunks: Receiver<Vec<f32>>,
}

impl Monitor {
    fn start() -> Self {
        let mut child = Process::new("parec")
            .args(["-d", "@DEFAULT_MONITOR@", "--raw", "--format=s16le", "--channels=1", "--rate=16000", "--latency-msec=20"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("parec runs (pulseaudio-utils; ./dev test starts the audio server)");
        let mut stdout = child.stdout.take().unwrap();
        let (tx, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 3200];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                let samples = buf[..n & !1].chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0);
                if tx.send(samples.collect()).is_err() {
                    break;
                }
            }
        });
        // parec connects in its own time (slowly on a loaded machine), and the null sink's
        // monitor streams silence once it has: what is played after its first chunk is heard whole.
        chunks.recv_timeout(PATIENCE).expect("parec records from the monitor");
        Self { child, chunks }
    }

    /// Records until `seconds` of audio have come out since the first loud sample and then
    /// half a second of quiet (a fresh null-sink stream may pause mid-speech while it starts),
    /// and at least until what was played before this call has come through: speech spoken in
    /// chunks with gaps between them (a loaded machine) is then heard whole.
    fn until_quiet_after(&self, seconds: f64) -> Vec<f32> {
        let (mut audio, mut first_loud, mut loud_until) = (Vec::new(), None::<usize>, None::<usize>);
        let span = (seconds * f64::from(SAMPLE_RATE)) as usize;
        let (called, deadline) = (Instant::now(), Instant::now() + PATIENCE);
        while Instant::now() < deadline {
            let Ok(chunk) = self.chunks.recv_timeout(Duration::from_millis(100)) else { continue };
            if let Some(i) = chunk.iter().position(|s| s.abs() > 0.01) {
                first_loud.get_or_insert(audio.len() + i);
                loud_until = Some(audio.len() + chunk.len());
            }
            audio.extend(chunk);
            let long_enough = first_loud.is_some_and(|start| audio.len() >= start + span);
            let caught_up = called.elapsed() >= Duration::from_millis(300);
            if caught_up && long_enough && loud_until.is_some_and(|end| audio.len() >= end + SAMPLE_RATE as usize / 2) {
                return audio;
            }
        }
        panic!("the monitor heard no speech followed by quiet (recorded {} samples)", audio.len());
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Speech queued on the speaker really comes out of the device, resampled from the voice's
/// 22,050 Hz to the device's rate: recorded from its monitor, it transcribes back to the sentence
/// and lasts as long as it was played.
#[test]
fn speech_plays_through_the_output_device() {
    let _turn = speaker();
    let loaded = VoiceConfig::default().synthesizer().unwrap();
    assert!(loaded.fallback.is_none(), "the default voice is Piper: {:?}", loaded.fallback);
    let mut tts = loaded.synthesizer;
    let out = AudioOut::speaker(None, tts.sample_rate()).expect("an output device (./dev test starts a null one)");
    let monitor = Monitor::start();
    let epoch = out.epoch();
    let sentence = "Please turn off the lights in the kitchen.";
    tts.synthesize(sentence, &mut |chunk| out.queue(epoch, chunk, None).unwrap()).unwrap();
    out.drain(epoch);
    let recorded = monitor.until_quiet_after(out.played_seconds());
    let heard = common::transcriber().transcribe(&recorded).expect("speech was recorded").text;
    let (wrong, total) = common::word_errors(sentence, &heard);
    assert!(wrong * 4 <= total, "played {sentence:?}, recorded {heard:?}");
    assert!(out.played_seconds() > 1.0, "{} s played", out.played_seconds());
    let loud = |a: &[f32]| a.iter().position(|s| s.abs() > 0.01).zip(a.iter().rposition(|s| s.abs() > 0.01));
    let (start, end) = loud(&recorded).expect("speech was recorded");
    let heard_seconds = (end - start) as f64 / f64::from(SAMPLE_RATE);
    assert!((heard_seconds - out.played_seconds()).abs() < 0.5, "heard {heard_seconds} s of {} s", out.played_seconds());
}

fn clip_path(name: &str) -> std::path::PathBuf {
    common::shared_dir().join("audio").join(name)
}

fn assistant(question: &str, output: Output, system: &str, sampling: Sampling) -> Assistant {
    assistant_hearing(Clip::open(&clip_path(question)).unwrap(), output, system, sampling)
}

fn assistant_hearing(clip: Clip, output: Output, system: &str, sampling: Sampling) -> Assistant {
    let turn = TurnSettings { sampling, system: system.into(), speak: true };
    let config = AssistantConfig { turn, output, ..AssistantConfig::new(LlmConfig::new(common::model_path())) };
    Assistant::start(config, Box::new(move || Ok(Box::new(clip)))).expect("the assistant starts")
}

/// Events up to and including the first that `last` accepts.
fn events_until(a: &Assistant, last: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let e = a.next_event(PATIENCE).unwrap_or_else(|| panic!("no event for {PATIENCE:?}; so far: {seen:#?}"));
        if let Event::Error { message, .. } = &e {
            panic!("the turn failed: {message}");
        }
        let done = last(&e);
        seen.push(e);
        if done {
            return seen;
        }
    }
}

fn states(events: &[Event]) -> Vec<State> {
    events.iter().filter_map(|e| if let Event::State { state } = e { Some(*state) } else { None }).collect()
}

/// A spoken question goes through every state, is answered, and the answer is heard.
#[test]
fn a_spoken_question_is_answered_aloud() {
    let _turn = speaker();
    let a = assistant("question-france.wav", Output::Speaker(None), DEFAULT_SYSTEM, Sampling::default());
    let monitor = Monitor::start();
    a.send(Command::Press);
    a.send(Command::Release);
    let events = events_until(&a, |e| matches!(e, Event::State { state: State::Idle }));
    assert_eq!(states(&events), [State::Listening, State::Transcribing, State::Thinking, State::Speaking, State::Idle]);
    let heard = events
        .iter()
        .find_map(|e| if let Event::Question { text, spoken: true, .. } = e { Some(text.clone()) } else { None })
        .unwrap();
    assert!(heard.to_lowercase().contains("capital"), "heard {heard:?}");
    let reply = events.iter().find_map(|e| if let Event::Reply { text, .. } = e { Some(text.clone()) } else { None }).unwrap();
    assert!(reply.contains("Paris"), "replied {reply:?}");
    let t = events.iter().find_map(|e| if let Event::Done { timeline, .. } = e { Some(timeline.clone()) } else { None }).unwrap();
    let marks = [t.transcript_ms, t.first_token_ms, t.first_sentence_ms, t.first_audio_ms, t.last_audio_ms].map(Option::unwrap);
    assert!(marks.windows(2).all(|w| w[0] <= w[1]), "stages out of order: {t:?}");
    assert!(t.audio_seconds > 1.0, "{t:?}");
    let played =
        common::transcriber().transcribe(&monitor.until_quiet_after(t.audio_seconds)).expect("the answer was heard").text;
    assert!(played.contains("Paris"), "the speaker said {played:?}");
}

/// Pressing push-to-talk while a long reply is being spoken drops the speech still queued,
/// cancels the generation, and captures and hears the new question; Stop then ends that turn.
#[test]
fn pressing_while_speaking_interrupts_and_listens() {
    let _turn = speaker();
    // Long enough to still be generating when the first audio is heard, even when the audio
    // server takes a second or two to start a fresh stream.
    let sampling = Sampling { max_tokens: 1500, ignore_eos: true, ..Sampling::default() };
    let a = assistant("question-planets.wav", Output::Speaker(None), "You are a storyteller. Tell long stories.", sampling);
    a.send(Command::Ask("Tell me a long story about a brave knight and a dragon.".into()));
    events_until(&a, |e| matches!(e, Event::State { state: State::Speaking }));

    a.send(Command::Press);
    let pressed = events_until(&a, |e| matches!(e, Event::State { state: State::Listening }));
    let unspoken = pressed.iter().find_map(|e| match e {
        Event::Interrupted { turn: 1, unspoken_seconds } => Some(*unspoken_seconds),
        _ => None,
    });
    assert!(unspoken.is_some_and(|s| s > 0.3), "the queued speech was not dropped: {pressed:#?}");

    a.send(Command::Release);
    let mut rest = events_until(&a, |e| matches!(e, Event::Question { turn: 2, spoken: true, .. }));
    a.send(Command::Stop);
    rest.extend(events_until(&a, |e| matches!(e, Event::State { state: State::Idle })));
    let after: Vec<&Event> = pressed.iter().chain(&rest).skip_while(|e| !matches!(e, Event::Interrupted { .. })).collect();
    let cancelled = after.iter().find_map(|e| match e {
        Event::Reply { turn: 1, stop, .. } => Some(*stop),
        _ => None,
    });
    assert_eq!(cancelled, Some(StopReason::Cancelled), "{after:#?}");
    let stale = after.iter().any(|e| matches!(e, Event::Token { turn: 1, .. } | Event::Sentence { turn: 1, .. }));
    assert!(!stale, "the interrupted reply went on streaming: {after:#?}");
    assert_eq!(states(&rest), [State::Transcribing, State::Thinking, State::Idle]);
    let heard = rest
        .iter()
        .find_map(|e| if let Event::Question { text, spoken: true, .. } = e { Some(text.clone()) } else { None })
        .unwrap();
    assert!(heard.to_lowercase().contains("planets"), "heard {heard:?}");
}

/// Speaks `clip` in real time with the key held, lets go when it ends, and waits for the turn:
/// what was heard, the reply, and the timeline.
fn spoken_turn(clip: Clip) -> (String, String, murmur_core::assistant::Timeline) {
    let seconds = clip.seconds();
    let a = assistant_hearing(clip, Output::Silent, DEFAULT_SYSTEM, Sampling::default());
    a.send(Command::Press);
    std::thread::sleep(Duration::from_secs_f64(seconds));
    a.send(Command::Release);
    let events = events_until(&a, |e| matches!(e, Event::Done { .. }));
    let heard = events
        .iter()
        .find_map(|e| if let Event::Question { text, spoken: true, .. } = e { Some(text.clone()) } else { None })
        .unwrap();
    let reply = events.iter().find_map(|e| if let Event::Reply { text, .. } = e { Some(text.clone()) } else { None }).unwrap();
    let t = events.iter().find_map(|e| if let Event::Done { timeline, .. } = e { Some(timeline.clone()) } else { None }).unwrap();
    (heard, reply, t)
}

/// A question spoken with the key held is transcribed at the pause after it, before the key
/// goes up: the turn starts from that transcript instead of hearing the recording again, and
/// answers it.
#[test]
fn the_pause_before_the_release_has_the_question_heard_ahead() {
    let (heard, reply, t) = spoken_turn(Clip::open(&clip_path("question-france.wav")).unwrap().in_real_time());
    assert!(heard.to_lowercase().contains("capital"), "heard {heard:?}");
    assert!(reply.contains("Paris"), "replied {reply:?}");
    assert!(t.heard_ahead, "the question was transcribed again after the release: {t:?}");
}

/// Words said after a pause are not lost to the transcript made at it: two questions with a
/// pause between them, the key let go right after the second, are heard in full.
#[test]
fn words_after_a_pause_are_heard_too() {
    let first = read_wav(&clip_path("question-france.wav")).unwrap();
    let second = read_wav(&clip_path("question-planets.wav")).unwrap();
    // The second question cut in its last word: the key goes up while it is still said.
    let spoken = 2.3 * SAMPLE_RATE as f32;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two-questions.wav");
    let spec =
        hound::WavSpec { channels: 1, sample_rate: SAMPLE_RATE, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut wav = hound::WavWriter::create(&path, spec).unwrap();
    for s in first.iter().chain(&second[..spoken as usize]) {
        wav.write_sample((s * 32767.0) as i16).unwrap();
    }
    wav.finalize().unwrap();
    let (heard, _, t) = spoken_turn(Clip::open(&path).unwrap().in_real_time());
    let heard = heard.to_lowercase();
    assert!(heard.contains("capital") && heard.contains("planets"), "heard {heard:?}");
    assert!(!t.heard_ahead, "{t:?}");
}

/// The turn `a` answers for a typed `question`, up to its return to idle: its states and timeline.
fn typed_turn(a: &Assistant, question: &str) -> (Vec<State>, murmur_core::assistant::Timeline) {
    a.send(Command::Ask(question.into()));
    let events = events_until(a, |e| matches!(e, Event::State { state: State::Idle }));
    let t = events.iter().find_map(|e| if let Event::Done { timeline, .. } = e { Some(timeline.clone()) } else { None }).unwrap();
    (states(&events), t)
}

/// Per-turn settings change on the running assistant, without reloading anything: once told to,
/// it answers unspoken, within the new token limit, from the new system prompt (evaluated ahead:
/// the next turn finds it in the cache); told again, it speaks again.
#[test]
fn retuning_changes_the_next_turns_without_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let a = assistant("question-france.wav", Output::Wav(dir.path().join("out.wav")), DEFAULT_SYSTEM, Sampling::default());
    let (spoken, t) = typed_turn(&a, "What is the capital of France?");
    assert!(spoken.contains(&State::Speaking) && t.audio_seconds > 0.5, "{spoken:?} {t:?}");
    let system_tokens = |t: &murmur_core::assistant::Timeline| t.reused_tokens;
    let before = system_tokens(&t);

    let longer = format!("{DEFAULT_SYSTEM} Be polite, and never use more words than the question needs.");
    let quiet = TurnSettings { sampling: Sampling { max_tokens: 3, ..Sampling::default() }, system: longer, speak: false };
    a.send(Command::Retune(quiet));
    let (states, t) = typed_turn(&a, "What is the capital of France?");
    assert_eq!(states, [State::Thinking, State::Idle], "an unspoken turn: {t:?}");
    assert_eq!((t.audio_seconds, t.first_audio_ms), (0.0, None), "{t:?}");
    assert!(t.generated_tokens <= 3, "{t:?}");
    assert!(system_tokens(&t) > before, "the longer system prompt was not evaluated ahead: {t:?}");

    a.send(Command::Retune(TurnSettings::default()));
    let (states, t) = typed_turn(&a, "What is the capital of France?");
    assert!(states.contains(&State::Speaking) && t.audio_seconds > 0.5, "{states:?} {t:?}");
}
