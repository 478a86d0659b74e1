//! Fragmented MP4 for the live view: an init segment (`ftyp` + `moov`) built from the
//! stream's SPS/PPS, then one `moof` + `mdat` fragment per access unit, so a browser's Media
//! Source Extensions play the run's already-encoded H.264 with one frame of muxing delay.
//!
//! Why by hand: GStreamer's `mp4mux` fragments by duration, not per access unit, and the
//! Rust MP4 crates write whole files, not a live stream of fragments. For one H.264 track
//! the format is a dozen fixed boxes (ISO/IEC 14496-12 and -15); this module writes exactly
//! those, and the tests read them back with ffprobe. Pure: no IO.

/// NAL unit types used here (ITU-T H.264 table 7-1).
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

/// The 90 kHz clock of the video track.
pub const TIMESCALE: u32 = 90_000;

/// NAL units of an Annex B byte stream (start codes `00 00 01` / `00 00 00 01` removed).
pub fn nal_units(au: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= au.len() {
        if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(au.len(), |n| n - 3);
        // A 4-byte start code leaves a zero before the next 3-byte one.
        while end > s && au[end - 1] == 0 && k + 1 < starts.len() {
            end -= 1;
        }
        if end > s {
            out.push(&au[s..end]);
        }
    }
    out
}

fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// SPS and PPS found in an access unit (keyframes carry them, `h264parse config-interval=-1`).
pub fn parameter_sets(au: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let nals = nal_units(au);
    let sps = nals.iter().find(|n| nal_type(n) == NAL_SPS)?;
    let pps = nals.iter().find(|n| nal_type(n) == NAL_PPS)?;
    Some((sps.to_vec(), pps.to_vec()))
}

/// Whether the access unit holds an IDR picture.
pub fn is_keyframe(au: &[u8]) -> bool {
    nal_units(au).iter().any(|n| nal_type(n) == NAL_IDR)
}

/// The RFC 6381 codec string (`avc1.42C01F`) of an SPS.
pub fn codec_string(sps: &[u8]) -> String {
    match sps.get(1..4) {
        Some(p) => format!("avc1.{:02X}{:02X}{:02X}", p[0], p[1], p[2]),
        None => "avc1.42E01E".into(),
    }
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
}

/// A box: size, type, then `body`.
fn mp4box(kind: &[u8; 4], body: impl FnOnce(&mut W)) -> Vec<u8> {
    let mut w = W(vec![0, 0, 0, 0]);
    w.bytes(kind);
    body(&mut w);
    let len = w.0.len() as u32;
    w.0[..4].copy_from_slice(&len.to_be_bytes());
    w.0
}

/// A full box: version and flags first.
fn full(kind: &[u8; 4], version: u8, flags: u32, body: impl FnOnce(&mut W)) -> Vec<u8> {
    mp4box(kind, |w| {
        w.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(w);
    })
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// The init segment (`ftyp` + `moov`) of a `width`×`height` H.264 track.
pub fn init_segment(sps: &[u8], pps: &[u8], width: u32, height: u32) -> Vec<u8> {
    let ftyp = mp4box(b"ftyp", |w| {
        w.bytes(b"isom").u32(0x200);
        for b in [b"isom", b"iso6", b"avc1", b"mp41"] {
            w.bytes(b);
        }
    });
    let mvhd = full(b"mvhd", 0, 0, |w| {
        w.u32(0)
            .u32(0)
            .u32(1000)
            .u32(0)
            .u32(0x0001_0000)
            .u16(0x0100)
            .zeros(10);
        for m in MATRIX {
            w.u32(m);
        }
        w.zeros(24).u32(2);
    });
    let tkhd = full(b"tkhd", 0, 3, |w| {
        w.u32(0)
            .u32(0)
            .u32(1)
            .u32(0)
            .u32(0)
            .zeros(8)
            .u16(0)
            .u16(0)
            .u16(0)
            .u16(0);
        for m in MATRIX {
            w.u32(m);
        }
        w.u32(width << 16).u32(height << 16);
    });
    let mdhd = full(b"mdhd", 0, 0, |w| {
        w.u32(0).u32(0).u32(TIMESCALE).u32(0).u16(0x55c4).u16(0);
    });
    let hdlr = full(b"hdlr", 0, 0, |w| {
        w.u32(0).bytes(b"vide").zeros(12).bytes(b"VideoHandler\0");
    });
    let avcc = mp4box(b"avcC", |w| {
        w.u8(1)
            .u8(sps.get(1).copied().unwrap_or(0x42))
            .u8(sps.get(2).copied().unwrap_or(0))
            .u8(sps.get(3).copied().unwrap_or(0x1e))
            .u8(0xff)
            .u8(0xe1)
            .u16(sps.len() as u16)
            .bytes(sps)
            .u8(1)
            .u16(pps.len() as u16)
            .bytes(pps);
    });
    let avc1 = mp4box(b"avc1", |w| {
        w.zeros(6).u16(1).u16(0).u16(0).zeros(12);
        w.u16(width as u16).u16(height as u16);
        w.u32(0x0048_0000)
            .u32(0x0048_0000)
            .u32(0)
            .u16(1)
            .zeros(32)
            .u16(0x18)
            .u16(0xffff);
        w.bytes(&avcc);
    });
    let stsd = full(b"stsd", 0, 0, |w| {
        w.u32(1).bytes(&avc1);
    });
    let empty = |k: &[u8; 4]| {
        full(k, 0, 0, |w| {
            w.u32(0);
        })
    };
    let stsz = full(b"stsz", 0, 0, |w| {
        w.u32(0).u32(0);
    });
    let stbl = mp4box(b"stbl", |w| {
        w.bytes(&stsd)
            .bytes(&empty(b"stts"))
            .bytes(&empty(b"stsc"))
            .bytes(&stsz)
            .bytes(&empty(b"stco"));
    });
    let vmhd = full(b"vmhd", 0, 1, |w| {
        w.zeros(8);
    });
    let dinf = mp4box(b"dinf", |w| {
        let url = full(b"url ", 0, 1, |_| {});
        w.bytes(&full(b"dref", 0, 0, |w| {
            w.u32(1).bytes(&url);
        }));
    });
    let minf = mp4box(b"minf", |w| {
        w.bytes(&vmhd).bytes(&dinf).bytes(&stbl);
    });
    let mdia = mp4box(b"mdia", |w| {
        w.bytes(&mdhd).bytes(&hdlr).bytes(&minf);
    });
    let trak = mp4box(b"trak", |w| {
        w.bytes(&tkhd).bytes(&mdia);
    });
    let mvex = mp4box(b"mvex", |w| {
        w.bytes(&full(b"trex", 0, 0, |w| {
            w.u32(1).u32(1).u32(0).u32(0).u32(0);
        }));
    });
    let moov = mp4box(b"moov", |w| {
        w.bytes(&mvhd).bytes(&trak).bytes(&mvex);
    });
    let mut out = ftyp;
    out.extend_from_slice(&moov);
    out
}

/// One fragment (`moof` + `mdat`) holding one access unit, decoded at `decode_time` and
/// lasting `duration` (both in [`TIMESCALE`] units). Parameter sets and delimiters are left
/// out (they are in the init segment).
pub fn fragment(sequence: u32, decode_time: u64, duration: u32, au: &[u8], key: bool) -> Vec<u8> {
    let mut data = Vec::with_capacity(au.len() + 16);
    for nal in nal_units(au) {
        if matches!(nal_type(nal), NAL_SPS | NAL_PPS | NAL_AUD) {
            continue;
        }
        data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        data.extend_from_slice(nal);
    }
    // sample_depends_on = 2 (an I frame) for keyframes; 1 and non-sync otherwise.
    let flags = if key { 0x0200_0000 } else { 0x0101_0000 };
    let build = |data_offset: u32| {
        let mfhd = full(b"mfhd", 0, 0, |w| {
            w.u32(sequence);
        });
        let tfhd = full(b"tfhd", 0, 0x02_0000, |w| {
            w.u32(1);
        });
        let tfdt = full(b"tfdt", 1, 0, |w| {
            w.u64(decode_time);
        });
        let trun = full(b"trun", 0, 0x0701, |w| {
            w.u32(1)
                .u32(data_offset)
                .u32(duration)
                .u32(data.len() as u32)
                .u32(flags);
        });
        let traf = mp4box(b"traf", |w| {
            w.bytes(&tfhd).bytes(&tfdt).bytes(&trun);
        });
        mp4box(b"moof", |w| {
            w.bytes(&mfhd).bytes(&traf);
        })
    };
    // The data offset counts from the start of the moof to the first byte of sample data.
    let moof_len = build(0).len() as u32;
    let moof = build(moof_len + 8);
    let mut out = moof;
    out.extend_from_slice(&(data.len() as u32 + 8).to_be_bytes());
    out.extend_from_slice(b"mdat");
    out.extend_from_slice(&data);
    out
}

/// Turns a stream of access units (pts in ns) into fragments with a decode timeline that
/// starts at 0 for this viewer.
#[derive(Debug, Default)]
pub struct Fragmenter {
    sequence: u32,
    base_ns: Option<u64>,
    next_time: u64,
}

impl Fragmenter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The fragment of an access unit with presentation time `pts_ns` and `duration_ns`.
    pub fn push(&mut self, au: &[u8], pts_ns: u64, duration_ns: u64, key: bool) -> Vec<u8> {
        let base = *self.base_ns.get_or_insert(pts_ns);
        let t = pts_ns.saturating_sub(base) * u64::from(TIMESCALE) / 1_000_000_000;
        // Never go backwards (the output timeline is monotonic, but be safe).
        let t = t.max(self.next_time);
        let d = (duration_ns * u64::from(TIMESCALE) / 1_000_000_000).max(1) as u32;
        self.next_time = t + u64::from(d);
        self.sequence += 1;
        fragment(self.sequence, t, d, au, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(mut b: &[u8]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        while b.len() >= 8 {
            let len = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
            out.push((String::from_utf8_lossy(&b[4..8]).into_owned(), len));
            b = &b[len..];
        }
        out
    }

    #[test]
    fn nal_units_split_on_both_start_codes() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let n = nal_units(&au);
        assert_eq!(n, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
        assert!(is_keyframe(&au));
        let (sps, pps) = parameter_sets(&au).unwrap();
        assert_eq!(
            (sps.as_slice(), pps.as_slice()),
            (&[0x67, 1, 2][..], &[0x68, 3][..])
        );
        assert!(!is_keyframe(&[0, 0, 1, 0x41, 9]));
        assert_eq!(codec_string(&[0x67, 0x42, 0xc0, 0x1f]), "avc1.42C01F");
    }

    #[test]
    fn boxes_have_consistent_sizes() {
        let init = init_segment(&[0x67, 0x42, 0xc0, 0x1f, 1], &[0x68, 2], 320, 240);
        let top = boxes(&init);
        assert_eq!(
            top.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
            ["ftyp", "moov"]
        );
        assert_eq!(top.iter().map(|b| b.1).sum::<usize>(), init.len());
        let au = [0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x65, 1, 2, 3];
        let f = fragment(1, 0, 3000, &au, true);
        let top = boxes(&f);
        assert_eq!(
            top.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
            ["moof", "mdat"]
        );
        // mdat: one length-prefixed NAL (the delimiter dropped).
        assert_eq!(&f[top[0].1 + 8..], &[0, 0, 0, 4, 0x65, 1, 2, 3]);
        // trun's data offset points at the first sample byte.
        let off_pos = f.windows(4).position(|w| w == b"trun").unwrap() + 4 + 4 + 4;
        let off = u32::from_be_bytes(f[off_pos..off_pos + 4].try_into().unwrap()) as usize;
        assert_eq!(off, top[0].1 + 8);
    }

    #[test]
    fn fragmenter_timeline_starts_at_zero_and_only_goes_forward() {
        let mut fr = Fragmenter::new();
        let au = [0, 0, 1, 0x41, 1];
        let tfdt = |f: &[u8]| {
            let p = f.windows(4).position(|w| w == b"tfdt").unwrap() + 8;
            u64::from_be_bytes(f[p..p + 8].try_into().unwrap())
        };
        assert_eq!(tfdt(&fr.push(&au, 3_600_000_000_000, 40_000_000, true)), 0);
        assert_eq!(
            tfdt(&fr.push(&au, 3_600_040_000_000, 40_000_000, false)),
            3600
        );
        // A timestamp from the past is moved after the previous frame.
        assert_eq!(
            tfdt(&fr.push(&au, 3_600_000_000_000, 40_000_000, false)),
            7200
        );
    }
}
