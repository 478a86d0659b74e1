//! Colours: an RGBA value type, `#rrggbb` parsing for the style file, and the fixed palettes
//! that give every class (and every zone or line) a stable, distinct colour.
//!
//! Colours are resolved once when a style is installed, so per-frame drawing only indexes a
//! palette or looks up a small map.

/// An 8-bit colour with straight (not premultiplied) alpha; `a == 255` is opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Color {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
    /// Opacity: 0 transparent, 255 opaque.
    pub a: u8,
}

impl Color {
    /// Opaque white.
    pub const WHITE: Color = Color::rgb(255, 255, 255);
    /// Opaque black.
    pub const BLACK: Color = Color::rgb(0, 0, 0);

    /// An opaque colour.
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Color { r, g, b, a: 255 }
    }

    /// A colour with alpha.
    pub const fn rgba(r: u8, g: u8, b: u8, a: u8) -> Self {
        Color { r, g, b, a }
    }

    /// The same colour with another alpha.
    pub const fn with_alpha(self, a: u8) -> Self {
        Color { a, ..self }
    }

    /// Parses `#rgb`, `#rrggbb` or `#rrggbbaa` (case-insensitive). `None` for anything else.
    pub fn from_hex(s: &str) -> Option<Color> {
        let hex = s.strip_prefix('#')?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        match hex.len() {
            3 => {
                let nib = |i: usize| u8::from_str_radix(&hex[i..=i], 16).ok().map(|v| v * 17);
                Some(Color::rgb(nib(0)?, nib(1)?, nib(2)?))
            }
            6 => Some(Color::rgb(byte(0)?, byte(2)?, byte(4)?)),
            8 => Some(Color::rgba(byte(0)?, byte(2)?, byte(4)?, byte(6)?)),
            _ => None,
        }
    }

    /// Perceived brightness (ITU-R BT.601 weights), 0–255.
    pub fn luma(self) -> u8 {
        ((299 * self.r as u32 + 587 * self.g as u32 + 114 * self.b as u32) / 1000) as u8
    }

    /// Black or white, whichever reads better on top of `self`.
    pub fn contrasting_text(self) -> Color {
        if self.luma() > 140 {
            Color::BLACK
        } else {
            Color::WHITE
        }
    }
}

/// Class colours, indexed by class id modulo the length: saturated hues that stay distinct
/// from each other and readable on typical street, indoor and warehouse footage.
pub const CLASS_PALETTE: [Color; 20] = [
    Color::rgb(0xff, 0x38, 0x38),
    Color::rgb(0x00, 0xc2, 0xff),
    Color::rgb(0xff, 0xb2, 0x1d),
    Color::rgb(0x48, 0xf9, 0x0a),
    Color::rgb(0xcb, 0x38, 0xff),
    Color::rgb(0xff, 0x70, 0x1f),
    Color::rgb(0x00, 0xd4, 0xbb),
    Color::rgb(0xff, 0x37, 0xc7),
    Color::rgb(0xcf, 0xd2, 0x31),
    Color::rgb(0x64, 0x73, 0xff),
    Color::rgb(0x3d, 0xdb, 0x86),
    Color::rgb(0xff, 0x9d, 0x97),
    Color::rgb(0x84, 0x38, 0xff),
    Color::rgb(0x92, 0xcc, 0x17),
    Color::rgb(0x2c, 0x99, 0xa8),
    Color::rgb(0xff, 0x95, 0xc8),
    Color::rgb(0x1a, 0x93, 0x34),
    Color::rgb(0x00, 0x18, 0xec),
    Color::rgb(0x52, 0x00, 0x85),
    Color::rgb(0x34, 0x45, 0x93),
];

/// Zone and line colours (by position in the scene) when the scene gives none: chosen to
/// differ from the most common class colours (person = red, car = blue…).
pub const REGION_PALETTE: [Color; 6] = [
    Color::rgb(0xff, 0xd6, 0x00),
    Color::rgb(0x00, 0xe6, 0x76),
    Color::rgb(0xd5, 0x00, 0xf9),
    Color::rgb(0x00, 0xb0, 0xff),
    Color::rgb(0xff, 0x6d, 0x00),
    Color::rgb(0xf5, 0xf5, 0xf5),
];

/// The palette colour of class `id`.
pub fn class_color(id: u32) -> Color {
    CLASS_PALETTE[id as usize % CLASS_PALETTE.len()]
}

/// The default colour of the `i`-th zone or line.
pub fn region_color(i: usize) -> Color {
    REGION_PALETTE[i % REGION_PALETTE.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms() {
        assert_eq!(Color::from_hex("#ff0000"), Some(Color::rgb(255, 0, 0)));
        assert_eq!(Color::from_hex("#00FF7f"), Some(Color::rgb(0, 255, 127)));
        assert_eq!(Color::from_hex("#f80"), Some(Color::rgb(255, 136, 0)));
        assert_eq!(
            Color::from_hex("#01020380"),
            Some(Color::rgba(1, 2, 3, 128))
        );
        for bad in [
            "", "#", "ff0000", "#ff00", "#gg0000", "#ff00000", "#+f0000", "#ÿÿ0",
        ] {
            assert_eq!(Color::from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn palettes_wrap_and_are_distinct() {
        assert_eq!(class_color(0), class_color(20));
        assert_ne!(class_color(0), class_color(1));
        let mut seen = std::collections::HashSet::new();
        assert!(CLASS_PALETTE.iter().all(|c| seen.insert(*c)));
        assert_eq!(region_color(6), region_color(0));
    }

    #[test]
    fn text_contrast() {
        assert_eq!(Color::rgb(255, 214, 0).contrasting_text(), Color::BLACK);
        assert_eq!(Color::rgb(0, 24, 236).contrasting_text(), Color::WHITE);
        assert_eq!(
            Color::rgb(0xff, 0x38, 0x38).contrasting_text(),
            Color::WHITE
        );
        assert_eq!(
            Color::rgb(0x00, 0xe6, 0x76).contrasting_text(),
            Color::BLACK
        );
    }
}
