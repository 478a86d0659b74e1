//! The `manifest` field of `POST /v1/models` (TOML, or JSON when it starts with `{`): parsed
//! and validated as the upload handler does, then serialised as a stored manifest is.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sightline_api::fuzzing::model_manifest(data);
});
