//! QR codes as PNG images (FPS payment links in `customer_interaction.inform.qr.img`).
//! The QR matrix comes from the `qrcode` crate and the image from `png`; this
//! module only lays the modules out in pixels.

use base64::Engine as _;
use qrcode::{Color, QrCode};

/// Pixels per QR module.
pub const MODULE_SIZE_PX: usize = 4;
/// The quiet zone around the code, in modules (the standard's minimum).
pub const QUIET_ZONE_MODULES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the text does not fit a QR code: {0}")]
    Encode(#[from] qrcode::types::QrError),
    #[error("PNG encoding: {0}")]
    Png(#[from] png::EncodingError),
}

/// A black-on-white 8-bit greyscale PNG of `content`'s QR code, base64.
pub fn png_base64(content: &str) -> Result<String, QrError> {
    let code = QrCode::new(content.as_bytes())?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE_MODULES) * MODULE_SIZE_PX;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules + QUIET_ZONE_MODULES, i / modules + QUIET_ZONE_MODULES);
        for y in my * MODULE_SIZE_PX..(my + 1) * MODULE_SIZE_PX {
            pixels[y * side + mx * MODULE_SIZE_PX..y * side + (mx + 1) * MODULE_SIZE_PX].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let side = u32::try_from(side).unwrap_or(u32::MAX);
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.write_header()?.write_image_data(&pixels)?;
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}
