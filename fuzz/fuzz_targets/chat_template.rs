//! The chat-template renderer (minijinja with Python compatibility), on hostile templates and
//! conversations.
#![no_main]
murmur_fuzz::capped_allocator!();

libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_inference_guest::fuzzing::template(data));
