//! Store values: tensors, targets, weights, optimizer state, layer caches and the run plan.
//! The first byte picks the decoder (see `trainer_fuzz::store_values`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    trainer_fuzz::store_values(data);
});
