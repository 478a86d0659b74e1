//! Still images into frames, for `sightline infer` and `POST /v1/infer`.
//!
//! Uploaded images are untrusted: a few hundred bytes of PNG can announce a 100000×100000
//! picture and make a decoder allocate 30 GB. So the header is read first and the image is
//! rejected from its announced size ([`InferError::TooManyPixels`], HTTP 413) before any
//! pixel is decoded; the decoder then runs with limits matching the announced size.

use crate::error::InferError;
use image::{ImageError, ImageReader, Limits};
use sightline_core::{Frame, Pts};
use std::io::Cursor;
use std::path::Path;

/// Default pixel limit: 40 megapixels (a 8K UHD frame is 33).
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

fn reader(bytes: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>, InferError> {
    let r = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| InferError::InvalidImage(e.to_string()))?;
    if r.format().is_none() {
        return Err(InferError::InvalidImage(
            "unrecognised image format (PNG and JPEG are supported)".into(),
        ));
    }
    Ok(r)
}

/// Decodes PNG or JPEG bytes into an RGB24 frame, refusing images whose header announces
/// more than `max_pixels` pixels before decoding them.
pub fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<Frame, InferError> {
    let (w, h) = reader(bytes)?
        .into_dimensions()
        .map_err(|e| InferError::InvalidImage(e.to_string()))?;
    if w == 0 || h == 0 {
        return Err(InferError::InvalidImage(format!("empty image {w}x{h}")));
    }
    if w as u64 * h as u64 > max_pixels {
        return Err(InferError::TooManyPixels {
            width: w,
            height: h,
            limit: max_pixels,
        });
    }
    let mut r = reader(bytes)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    // Output (≤ 8 bytes/pixel for 16-bit RGBA) plus decoder working memory.
    limits.max_alloc = Some(w as u64 * h as u64 * 8 + (64 << 20));
    r.limits(limits);
    let img = r.decode().map_err(|e| match e {
        ImageError::Limits(l) => InferError::InvalidImage(format!("image exceeds its header: {l}")),
        other => InferError::InvalidImage(other.to_string()),
    })?;
    let rgb = img.into_rgb8();
    let (w, h) = rgb.dimensions();
    Frame::from_rgb(w, h, Pts::ZERO, rgb.into_raw())
        .ok_or_else(|| InferError::InvalidImage("decoded size mismatch".into()))
}

/// Reads and decodes an image file (see [`decode_image`]).
pub fn decode_image_file(path: &Path, max_pixels: u64) -> Result<Frame, InferError> {
    let bytes = std::fs::read(path)
        .map_err(|e| InferError::io(format!("reading {}", path.display()), e))?;
    decode_image(&bytes, max_pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 9]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// A PNG whose IHDR claims `w`×`h` but carries no pixel data.
    fn png_header_only(w: u32, h: u32) -> Vec<u8> {
        let mut bytes = png(1, 1);
        // IHDR data starts at byte 16 (8 signature + 4 length + 4 type); CRC at 29..33.
        bytes[16..20].copy_from_slice(&w.to_be_bytes());
        bytes[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for b in data {
            c ^= *b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn decodes_png_to_rgb() {
        let f = decode_image(&png(5, 3), 100).unwrap();
        assert_eq!((f.width, f.height), (5, 3));
        assert_eq!(f.pixel(4, 2), [4, 2, 9]);
    }

    #[test]
    fn pixel_bomb_is_rejected_from_the_header() {
        let bomb = png_header_only(100_000, 100_000);
        let e = decode_image(&bomb, DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(
            matches!(
                e,
                InferError::TooManyPixels {
                    width: 100_000,
                    height: 100_000,
                    ..
                }
            ),
            "{e}"
        );
        // Under the limit, the same lie is caught by the decoder, not a panic or an OOM.
        let small_lie = png_header_only(300, 300);
        assert!(matches!(
            decode_image(&small_lie, DEFAULT_MAX_PIXELS),
            Err(InferError::InvalidImage(_))
        ));
        assert!(matches!(
            decode_image(&png(20, 20), 399),
            Err(InferError::TooManyPixels { .. })
        ));
    }

    #[test]
    fn garbage_is_invalid() {
        for bytes in [&b""[..], b"not an image at all", &png(4, 4)[..30]] {
            assert!(matches!(
                decode_image(bytes, DEFAULT_MAX_PIXELS),
                Err(InferError::InvalidImage(_))
            ));
        }
    }
}
