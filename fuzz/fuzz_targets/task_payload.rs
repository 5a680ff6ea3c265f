//! Task payloads (command line and Lambda event body), task ids as text, and completion events from the stream.
//! The first byte picks the decoder (see `trainer_fuzz::task_payload`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    trainer_fuzz::task_payload(data);
});
