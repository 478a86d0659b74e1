//! `POST /v1/infer` bodies: `<Content-Type>\n<body>` through the handler's body parsing
//! (JSON + base64, multipart, raw bytes) and the image decode with its header pixel check.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sightline_api::fuzzing::infer_body(data);
});
