//! The guest's GGUF parser (header, metadata, tensor directory) and what `load` builds from the
//! metadata: model shape, tokenizer, chat template.
#![no_main]
murmur_fuzz::capped_allocator!();

libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_inference_guest::fuzzing::gguf(data));
