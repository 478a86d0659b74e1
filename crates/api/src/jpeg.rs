//! JPEG encoding of frames for `/v1/infer?annotate=true`, snapshots and the MJPEG preview.
//! Encoding a 768×576 frame takes milliseconds, so callers run it on the blocking pool.

use crate::error::ApiError;
use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;
use sightline_core::Frame;

/// Quality used everywhere (good enough for previews, ~60 KB for a 768×576 frame).
pub const QUALITY: u8 = 80;

/// The frame as a baseline JPEG.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(frame.data.len() / 8);
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode(
            &frame.data,
            frame.width,
            frame.height,
            ExtendedColorType::Rgb8,
        )
        .map_err(|e| ApiError::internal("jpeg encode", &e))?;
    Ok(out)
}

/// Runs blocking work off the async workers, mapping a panicked task to an internal error.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("blocking task", &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::Pts;

    #[test]
    fn encodes_a_decodable_jpeg() {
        let f = Frame::filled(64, 48, [200, 10, 10], Pts::ZERO);
        let jpg = encode(&f).unwrap();
        assert_eq!(&jpg[..2], &[0xFF, 0xD8]);
        let back = sightline_inference::decode_image(&jpg, 1 << 20).unwrap();
        assert_eq!((back.width, back.height), (64, 48));
    }
}
