//! WAV input: any header, format, depth, channel count and rate, then resampling to 16 kHz.
#![no_main]
murmur_fuzz::capped_allocator!();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = murmur_formats::wav::decode_wav(data);
});
