//! Colour conversion of whole frames, in-process, with GStreamer's own converter
//! (`GstVideoConverter`, the code the `videoconvert` element runs): an I420 frame turned into
//! RGB here is byte for byte what a `… ! videoconvert ! video/x-raw,format=RGB` pipeline
//! produces from the same decoded picture (tested), so detections do not depend on where the
//! conversion happens. Hand-written YUV maths would not match the pipeline's rounding and
//! chroma resampling, and would change every detection of the golden replays.

use crate::error::MediaError;
use gstreamer as gst;
use gstreamer_video as gst_video;
use sightline_core::{Frame, PixelFormat, YuvColor, YuvMatrix};

/// The GStreamer colorimetry of an I420 frame's [`YuvColor`].
fn colorimetry(c: &YuvColor) -> gst_video::VideoColorimetry {
    let range = if c.full_range {
        gst_video::VideoColorRange::Range0_255
    } else {
        gst_video::VideoColorRange::Range16_235
    };
    let matrix = match c.matrix {
        YuvMatrix::Bt601 => gst_video::VideoColorMatrix::Bt601,
        YuvMatrix::Bt709 => gst_video::VideoColorMatrix::Bt709,
        YuvMatrix::Bt2020 => gst_video::VideoColorMatrix::Bt2020,
    };
    gst_video::VideoColorimetry::new(
        range,
        matrix,
        gst_video::VideoTransferFunction::Unknown,
        gst_video::VideoColorPrimaries::Unknown,
    )
}

/// The [`YuvColor`] of a decoder's caps.
pub(crate) fn yuv_color(info: &gst_video::VideoInfo) -> YuvColor {
    let c = info.colorimetry();
    YuvColor {
        matrix: match c.matrix() {
            gst_video::VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
            gst_video::VideoColorMatrix::Bt2020 => YuvMatrix::Bt2020,
            _ => YuvMatrix::Bt601,
        },
        full_range: c.range() == gst_video::VideoColorRange::Range0_255,
        chroma_site: info.chroma_site().bits(),
    }
}

/// The `VideoInfo` describing a [`Frame`]'s packed layout.
pub(crate) fn frame_info(frame: &Frame) -> Result<gst_video::VideoInfo, MediaError> {
    let (w, h) = (frame.width, frame.height);
    let err = |e: &dyn std::fmt::Display| {
        MediaError::internal("frame", format!("no video info for {w}x{h}: {e}"))
    };
    match frame.format {
        PixelFormat::Rgb24 => {
            let stride = [w as i32 * 3];
            gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w, h)
                .stride(&stride)
                .offset(&[0])
                .build()
                .map_err(|e| err(&e))
        }
        PixelFormat::I420(c) => {
            let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
            let luma = w as usize * h as usize;
            let stride = [w as i32, cw as i32, cw as i32];
            let offset = [0, luma, luma + cw * ch];
            gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w, h)
                .colorimetry(&colorimetry(&c))
                .chroma_site(gst_video::VideoChromaSite::from_bits_truncate(
                    c.chroma_site,
                ))
                .stride(&stride)
                .offset(&offset)
                .build()
                .map_err(|e| err(&e))
        }
    }
}

/// Turns frames into packed RGB, keeping the converter of the last size and colour (one per
/// stream; reuse it).
#[derive(Default)]
pub struct RgbConverter {
    cached: Option<Cached>,
}

/// The converter of one frame size and format, with the layouts it was built for.
struct Cached {
    key: (u32, u32, PixelFormat),
    conv: gst_video::VideoConverter,
    in_info: gst_video::VideoInfo,
    out_info: gst_video::VideoInfo,
}

impl std::fmt::Debug for RgbConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RgbConverter")
            .field("cached", &self.cached.as_ref().map(|c| c.key))
            .finish()
    }
}

impl RgbConverter {
    pub fn new() -> Self {
        Self::default()
    }

    /// An RGB copy of `frame` (same size, timestamps and sequence number); an RGB frame is
    /// simply cloned.
    pub fn to_rgb(&mut self, frame: &Frame) -> Result<Frame, MediaError> {
        if frame.is_rgb() {
            return Ok(frame.clone());
        }
        if !frame.is_well_formed() {
            return Err(MediaError::internal(
                "frame",
                format!(
                    "{}x{} {:?} frame of {} bytes",
                    frame.width,
                    frame.height,
                    frame.format,
                    frame.data.len()
                ),
            ));
        }
        crate::init()?;
        let key = (frame.width, frame.height, frame.format);
        if self.cached.as_ref().is_none_or(|c| c.key != key) {
            let in_info = frame_info(frame)?;
            let out_info = frame_info(&Frame {
                format: PixelFormat::Rgb24,
                data: Vec::new(),
                ..frame.clone_header()
            })?;
            let mut config = gst_video::VideoConverterConfig::new();
            // Same as `videoconvert`'s defaults, one thread: callers run one per stream.
            config.set_dither_method(gst_video::VideoDitherMethod::Bayer);
            config.set_chroma_resampler_method(gst_video::VideoResamplerMethod::Linear);
            let conv = gst_video::VideoConverter::new(&in_info, &out_info, Some(config))
                .map_err(|e| MediaError::internal("frame", e.to_string()))?;
            self.cached = Some(Cached {
                key,
                conv,
                in_info,
                out_info,
            });
        }
        let Some(Cached {
            conv,
            in_info,
            out_info,
            ..
        }) = &self.cached
        else {
            unreachable!("set above")
        };
        let err = |e: &dyn std::fmt::Display| MediaError::internal("frame", e.to_string());
        // The infos describe packed planes but keep GStreamer's default (padded) `size`, which
        // mapping checks: pad the buffers to it (a few rows at most; none at common sizes).
        let mut data = Vec::with_capacity(in_info.size().max(frame.data.len()));
        data.extend_from_slice(&frame.data);
        data.resize(in_info.size().max(frame.data.len()), 0);
        let src = gst::Buffer::from_mut_slice(data);
        let src = gst_video::VideoFrame::from_buffer_readable(src, in_info)
            .map_err(|_| err(&"cannot map the I420 frame"))?;
        let packed = frame.width as usize * frame.height as usize * 3;
        let dst = gst::Buffer::from_mut_slice(vec![0u8; out_info.size().max(packed)]);
        let mut out = gst_video::VideoFrame::from_buffer_writable(dst, out_info)
            .map_err(|_| err(&"cannot map the RGB frame"))?;
        conv.frame(&src, &mut out);
        let mut data = out
            .into_buffer()
            .try_into_inner::<Vec<u8>>()
            .map_err(|(_, e)| err(&format!("{e:?}")))?;
        data.truncate(packed);
        Ok(Frame {
            format: PixelFormat::Rgb24,
            data,
            ..frame.clone_header()
        })
    }
}
