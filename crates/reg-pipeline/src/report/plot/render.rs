//! The one font every chart is measured and rasterized with (DejaVu Sans, embedded through the
//! `dejavu` crate, so a PNG looks the same on every machine and needs no system font), and the
//! SVG → PNG step (resvg, pure Rust).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

use crate::PipelineError;

/// The font family written into every chart's SVG: the embedded font first, so viewers that have
/// DejaVu Sans draw what the PNG shows, then whatever sans-serif font a viewer has.
pub const FONT_FAMILY: &str = "DejaVu Sans, sans-serif";

/// The embedded font's bytes (DejaVu Sans Book).
#[must_use]
pub fn font_bytes() -> &'static [u8] {
    dejavu::sans::regular()
}

/// Width in pixels of `text` set in the embedded font at `px` pixels per em (kerning ignored: it
/// moves a label by a fraction of a pixel).
#[must_use]
pub fn text_width(text: &str, px: f64) -> f64 {
    static FACE: OnceLock<Option<ttf_parser::Face<'static>>> = OnceLock::new();
    let Some(face) = FACE.get_or_init(|| ttf_parser::Face::parse(font_bytes(), 0).ok()) else {
        // Not reachable with the embedded font; a generous estimate keeps layouts safe.
        return 0.7 * px * text.chars().count() as f64;
    };
    let units: u32 = text
        .chars()
        .map(|c| {
            face.glyph_index(c)
                .and_then(|g| face.glyph_hor_advance(g))
                .map_or(u32::from(face.units_per_em()) / 2, u32::from)
        })
        .sum();
    f64::from(units) * px / f64::from(face.units_per_em())
}

/// Options that lay out a chart's text with the embedded font only (no system font is looked up).
#[must_use]
pub fn usvg_options() -> usvg::Options<'static> {
    let mut fonts = usvg::fontdb::Database::new();
    fonts.load_font_data(font_bytes().to_vec());
    fonts.set_sans_serif_family("DejaVu Sans");
    usvg::Options {
        font_family: "DejaVu Sans".into(),
        fontdb: Arc::new(fonts),
        ..usvg::Options::default()
    }
}

/// Rasterizes a chart's SVG to PNG bytes at its own size, on its own (white) background.
///
/// # Errors
/// [`PipelineError::Io`] (for `path`, the file the PNG is meant for) when the SVG cannot be
/// parsed or the image cannot be encoded.
pub fn svg_to_png(svg: &str, path: &Path) -> Result<Vec<u8>, PipelineError> {
    let fail = |what: String| PipelineError::io(path, std::io::Error::other(what));
    let tree = usvg::Tree::from_str(svg, &usvg_options()).map_err(|e| fail(e.to_string()))?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| fail(format!("empty chart ({size:?})")))?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_come_from_the_font() {
        // DejaVu Sans: every digit advances 1303 of 2048 units.
        let w = text_width("0123456789", 20.48);
        assert!((w - 130.3).abs() < 1e-9, "{w}");
        assert!(text_width("W", 10.0) > text_width("i", 10.0));
    }

    #[test]
    fn png_has_the_svg_size_and_signature() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="white"/><text x="2" y="15" font-family="sans-serif" font-size="12">0.3</text></svg>"#;
        let png = svg_to_png(svg, Path::new("x.png")).expect("rendered");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, right after the chunk's length and type.
        assert_eq!(&png[16..24], &[0, 0, 0, 40, 0, 0, 0, 20]);
    }
}
