//! The TrueType font the plots draw text with. Plotters is built without font-kit (no fontconfig C library to
//! install), so text goes through ab_glyph and a font file found at run time: `TRAINER_FONT`, else a common sans
//! font of Debian/Ubuntu, Fedora, Arch, macOS or Windows.

use anyhow::{bail, Result};
use plotters::style::FontStyle;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The family name the plots ask for.
pub const FAMILY: &str = "sans-serif";

const CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

static REGISTERED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

fn find_and_register() -> Result<PathBuf, String> {
    let path = match std::env::var_os("TRAINER_FONT") {
        Some(p) => PathBuf::from(p),
        None => CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                "no TrueType font found for the plots' text: set TRAINER_FONT=/path/to/font.ttf \
                 (or install one, e.g. `apt-get install fonts-dejavu-core`)"
                    .to_string()
            })?,
    };
    let bytes =
        std::fs::read(&path).map_err(|e| format!("TRAINER_FONT / font {}: {e}", path.display()))?;
    // Plotters keeps the font for the life of the process; this runs once.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
        .map_err(|_| format!("{}: not a TrueType font plotters can read", path.display()))?;
    Ok(path)
}

/// Registers the font once; says which file, or why there is none.
pub fn ensure() -> Result<PathBuf> {
    match REGISTERED.get_or_init(find_and_register) {
        Ok(p) => Ok(p.clone()),
        Err(e) => bail!("the plots need a font: {e}"),
    }
}
