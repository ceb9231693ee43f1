//! Offline sample-rate conversion with rubato's FFT resampler.

use rubato::{FftFixedIn, Resampler};

/// The resampler could not be built or failed on the input.
#[derive(Debug, thiserror::Error)]
#[error("resampling from {from} Hz failed: {reason}")]
pub struct ResampleError {
    /// Input rate.
    pub from: u32,
    /// Why.
    pub reason: String,
}

/// `input` (mono, at `from` Hz) converted to `to` Hz, aligned (the resampler's delay removed)
/// and exactly `len * to / from` samples long.
pub fn resample(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    if from == to || input.is_empty() {
        return Ok(input.to_vec());
    }
    let fail = |e: &dyn std::fmt::Display| ResampleError { from, reason: e.to_string() };
    let mut r = FftFixedIn::<f32>::new(from as usize, to as usize, 1024, 2, 1).map_err(|e| fail(&e))?;
    let delay = r.output_delay();
    let expected = (input.len() as u64 * to as u64 / from as u64) as usize;
    let mut out = Vec::with_capacity(expected + delay + r.output_frames_max());
    let mut buf = r.output_buffer_allocate(true);
    let mut pos = 0;
    while input.len() - pos >= r.input_frames_next() {
        let n = r.input_frames_next();
        let (_, written) = r.process_into_buffer(&[&input[pos..pos + n]], &mut buf, None).map_err(|e| fail(&e))?;
        out.extend_from_slice(&buf[0][..written]);
        pos += n;
    }
    // An input that ends on a chunk boundary has no partial chunk: rubato refuses an empty one.
    let rest = &input[pos..];
    let tail = (!rest.is_empty()).then_some([rest]);
    let (_, written) = r.process_partial_into_buffer(tail.as_ref().map(|t| &t[..]), &mut buf, None).map_err(|e| fail(&e))?;
    out.extend_from_slice(&buf[0][..written]);
    while out.len() < expected + delay {
        let (_, written) = r.process_partial_into_buffer(None::<&[&[f32]]>, &mut buf, None).map_err(|e| fail(&e))?;
        if written == 0 {
            break;
        }
        out.extend_from_slice(&buf[0][..written]);
    }
    out.drain(..delay.min(out.len()));
    out.resize(expected, 0.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_stays_empty() {
        assert!(resample(&[], 22_050, 16_000).unwrap().is_empty());
    }

    /// Piper's audio comes in multiples of 256 samples, so it often ends on a chunk boundary.
    #[test]
    fn input_ending_on_a_chunk_boundary_resamples() {
        for len in [1024, 2048, 4096 * 5] {
            assert_eq!(resample(&vec![0.1; len], 22_050, 16_000).unwrap().len(), len * 16_000 / 22_050);
        }
    }

    /// A 440 Hz tone keeps its frequency (zero crossings) and level (RMS) through 48 kHz,
    /// 44.1 kHz and 22.05 kHz → 16 kHz, and the length comes out exact.
    #[test]
    fn tone_survives_resampling() {
        for from in [48_000u32, 44_100, 22_050] {
            let tone: Vec<f32> =
                (0..from).map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / from as f32).sin() * 0.5).collect();
            let out = resample(&tone, from, 16_000).unwrap();
            assert_eq!(out.len(), 16_000);
            let body = &out[400..15_600];
            let rms = (body.iter().map(|v| v * v).sum::<f32>() / body.len() as f32).sqrt();
            assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.01, "{from} Hz: rms {rms}");
            let crossings = body.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
            assert!((crossings as f32 - 880.0 * 0.95).abs() <= 3.0, "{from} Hz: {crossings} zero crossings");
        }
    }
}
