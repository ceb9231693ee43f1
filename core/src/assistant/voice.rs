//! The voice thread: synthesizes each sentence as it arrives and queues it for playback, while
//! the brain goes on generating.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use super::owner::{Msg, Progress};
use crate::audio::{AudioOut, OnStart};
use crate::tts::{speakable, Synthesizer};

/// Work for the voice.
pub(super) enum Job {
    /// Speak one sentence of a turn's reply. `waiting`, if given, is dropped once the sentence's
    /// first audio is queued, or once it is known that none will be (for whoever waits on it).
    Speak { turn: u64, epoch: u64, text: String, waiting: Option<Sender<()>> },
    /// The turn's reply is complete: report when its last sample has gone out.
    Finish { turn: u64, epoch: u64 },
}

/// A synthesizer and the output it feeds.
pub(super) struct Voice {
    pub tts: Box<dyn Synthesizer>,
    pub out: Arc<AudioOut>,
    pub owner: Sender<Msg>,
}

impl Voice {
    /// Speaks until the brain hangs up.
    pub fn run(mut self, jobs: Receiver<Job>) {
        // (turn, samples queued for it, whether its speech failed and the user was told)
        let mut current = (0, 0usize, false);
        for job in jobs {
            match job {
                Job::Speak { turn, epoch, text, waiting } => {
                    if current.0 != turn {
                        current = (turn, 0, false);
                    }
                    match self.speak(turn, epoch, &text, current.1 == 0, waiting) {
                        Ok(queued) => current.1 += queued,
                        Err(why) if !current.2 => {
                            current.2 = true;
                            self.tell(turn, why);
                        }
                        Err(_) => {}
                    }
                }
                Job::Finish { turn, epoch } => {
                    let at = self.out.drain(epoch);
                    // The device may also fail after the last sentence was queued.
                    if let (Err(e), false) = (self.out.check(), current.0 == turn && current.2) {
                        self.tell(turn, e.to_string());
                    }
                    let seconds = if current.0 == turn { current.1 as f64 / f64::from(self.out.rate()) } else { 0.0 };
                    let _ = self.owner.send(Msg::Progress(turn, Progress::AudioDone { at, seconds }));
                }
            }
        }
    }

    fn tell(&self, turn: u64, why: String) {
        tracing::warn!(turn, "speaking failed: {why}");
        let _ = self.owner.send(Msg::Progress(turn, Progress::Notice(format!("speaking failed: {why}"))));
    }

    /// Synthesizes `text` into the output chunk by chunk, dropping `waiting` once the first chunk
    /// is queued; returns the samples queued, or why speaking failed.
    fn speak(
        &mut self,
        turn: u64,
        epoch: u64,
        text: &str,
        first: bool,
        mut waiting: Option<Sender<()>>,
    ) -> Result<usize, String> {
        let Some(words) = speakable(text) else { return Ok(0) };
        if self.out.epoch() != epoch {
            return Ok(0);
        }
        let owner = self.owner.clone();
        let mut on_start: Option<OnStart> =
            first.then(|| Box::new(move |at| drop(owner.send(Msg::Progress(turn, Progress::AudioStarted(at))))) as OnStart);
        let (out, mut queued, mut failed) = (&self.out, 0, None);
        let result = self.tts.synthesize(&words, &mut |chunk| match out.queue(epoch, chunk, on_start.take()) {
            Ok(heard) => {
                waiting.take();
                queued += if heard { chunk.len() } else { 0 };
                heard
            }
            Err(e) => {
                failed = Some(e.to_string());
                false
            }
        });
        match result.err().map(|e| e.to_string()).or(failed) {
            Some(why) => Err(why),
            None => Ok(queued),
        }
    }
}
