//! Listening ahead: a pause while push-to-talk is still held starts the transcription of what
//! was said so far (and the LLM's prompt evaluation), so that a release after the pause finds
//! the words ready. Users let go of the key a few hundred milliseconds after their last word;
//! that time is spent on Whisper instead of waiting.
//!
//! The rule for "nothing was said after the pause" is defined here once: a recording whose
//! tail is quiet next to its speech says the same as its transcribed head.

use crate::audio::{level_window, levels, SAMPLE_RATE};

/// Quiet windows (of 50 ms, the level meter's) after speech that make a pause: 150 ms.
const PAUSE_WINDOWS: usize = 3;
/// A window is quiet when its RMS is below this fraction of the loudest one so far (-20 dB).
const QUIET_FRACTION: f32 = 0.1;
/// Below this RMS (about -50 dBFS) nothing counts as speech, however quiet the rest.
const FLOOR_RMS: f32 = 0.003;

/// Finds pauses in the level meter's readings of one recording.
#[derive(Debug, Default)]
pub(super) struct PauseDetector {
    peak: f32,
    quiet: usize,
    /// Speech was heard since the last pause.
    speaking: bool,
}

impl PauseDetector {
    /// Takes the next level (RMS of 50 ms); true once at the start of each pause after speech.
    pub fn level(&mut self, rms: f32) -> bool {
        self.peak = self.peak.max(rms);
        if !is_quiet_level(rms, self.peak) {
            self.speaking = true;
            self.quiet = 0;
            return false;
        }
        self.quiet += 1;
        if self.speaking && self.quiet >= PAUSE_WINDOWS {
            self.speaking = false;
            return true;
        }
        false
    }

    /// Whether the last levels were a pause (or silence before any speech).
    pub fn in_pause(&self) -> bool {
        self.quiet >= PAUSE_WINDOWS
    }
}

fn is_quiet_level(rms: f32, peak: f32) -> bool {
    rms < FLOOR_RMS || rms < peak * QUIET_FRACTION
}

/// Whether `recording` says no more than its first `head` samples: it starts with them (the
/// same recording, longer) and nothing after them is louder than quiet next to their speech.
pub(super) fn says_no_more_than(recording: &[f32], head: usize) -> bool {
    let Some(tail) = recording.get(head..) else { return false };
    let peak = levels(&recording[..head], SAMPLE_RATE).fold(0f32, f32::max);
    levels(tail, SAMPLE_RATE).all(|rms| is_quiet_level(rms, peak))
}

/// Seconds of quiet at the end of `recording`, after its last word (the windows after the last
/// one that is not quiet next to the loudest).
pub(super) fn quiet_tail_seconds(recording: &[f32]) -> f32 {
    let rms: Vec<f32> = levels(recording, SAMPLE_RATE).collect();
    let peak = rms.iter().copied().fold(0f32, f32::max);
    let speech_end = rms.iter().rposition(|&r| !is_quiet_level(r, peak)).map_or(0, |i| (i + 1) * level_window(SAMPLE_RATE));
    recording.len().saturating_sub(speech_end) as f32 / SAMPLE_RATE as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(seconds: f32, amplitude: f32) -> Vec<f32> {
        (0..(seconds * SAMPLE_RATE as f32) as usize).map(|i| amplitude * (i as f32 * 0.3).sin()).collect()
    }

    /// A pause is reported once, after three quiet windows that follow speech; silence before
    /// any speech and the rest of a long pause are not new pauses.
    #[test]
    fn a_pause_comes_once_after_speech() {
        let mut d = PauseDetector::default();
        let fired: Vec<bool> = [0.0, 0.0, 0.0, 0.0, 0.2, 0.3, 0.01, 0.01, 0.01, 0.01, 0.01, 0.25, 0.0, 0.0, 0.0]
            .into_iter()
            .map(|rms| d.level(rms))
            .collect();
        let at: Vec<usize> = fired.iter().enumerate().filter(|(_, &f)| f).map(|(i, _)| i).collect();
        assert_eq!(at, [8, 14]);
        assert!(d.in_pause());
        d.level(0.3);
        assert!(!d.in_pause(), "speaking again");
    }

    /// A quiet tail adds nothing; a word after the head does, and so does a shorter recording.
    #[test]
    fn only_a_quiet_tail_says_nothing_more() {
        let head = tone(1.0, 0.3);
        let quiet = [head.clone(), tone(0.4, 0.01)].concat();
        let spoken = [head.clone(), tone(0.2, 0.01), tone(0.3, 0.2)].concat();
        assert!(says_no_more_than(&quiet, head.len()));
        assert!(says_no_more_than(&head, head.len()));
        assert!(!says_no_more_than(&spoken, head.len()));
        assert!(!says_no_more_than(&head[..100], head.len()));
    }

    /// The quiet after the last word is measured; a recording that ends speaking has none.
    #[test]
    fn the_quiet_tail_is_what_follows_the_last_word() {
        let head = tone(1.0, 0.3);
        let tail = quiet_tail_seconds(&[head.clone(), tone(0.2, 0.01), tone(0.3, 0.2), tone(0.42, 0.0)].concat());
        assert!((tail - 0.42).abs() < 1e-3, "{tail}");
        assert_eq!(quiet_tail_seconds(&head), 0.0);
    }
}
