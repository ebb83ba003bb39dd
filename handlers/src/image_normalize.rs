//! `image-normalize`: a scanned page as an 8-bit grayscale PNG of bounded size.

use std::io::Cursor;

use async_trait::async_trait;
use image::codecs::png::PngEncoder;
use image::imageops::{self, FilterType};
use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, ImageDecoder, ImageError, ImageReader, Limits};
use marie_protocol::HandlerError;

use crate::handler::{Handler, JobInput};

/// The longest side `image-normalize` produces unless configured otherwise, in pixels.
pub const DEFAULT_MAX_SIDE: u32 = 1024;

/// The most pixels a payload may decode to (64 megapixels).
const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// The most bytes a decoder may allocate (512 MiB).
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// The `image-normalize` handler: decodes a PNG, JPEG or TIFF (the format is guessed
/// from the content), and outputs it as an 8-bit grayscale PNG that fits within
/// `max_side` x `max_side` pixels. See [`normalize_image`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageNormalize {
    /// The longest side of the output, in pixels; larger images are scaled down.
    pub max_side: u32,
}

impl Default for ImageNormalize {
    fn default() -> Self {
        ImageNormalize {
            max_side: DEFAULT_MAX_SIDE,
        }
    }
}

#[async_trait]
impl Handler for ImageNormalize {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, HandlerError> {
        let max_side = self.max_side;
        let payload = input.payload;
        super::run_blocking(move || normalize_image(&payload, max_side)).await
    }
}

/// Normalizes an image for the document models: decodes `bytes` as PNG, JPEG or TIFF
/// (guessed from the content), applies its EXIF orientation, converts it to 8-bit
/// grayscale (transparent pixels over white), scales it down with a Lanczos3 filter so
/// that neither side exceeds `max_side` (keeping the aspect ratio, never scaling up; a
/// `max_side` of 0 counts as 1), and encodes the result as PNG.
///
/// Blocking and CPU-bound: call it from `spawn_blocking`. Never panics. An
/// undecodable payload, or one over 64 megapixels or 512 MiB decoded, is
/// [`HandlerError::invalid_input`].
pub fn normalize_image(bytes: &[u8], max_side: u32) -> Result<Vec<u8>, HandlerError> {
    match super::catch_panic(|| normalize(bytes, max_side)) {
        Ok(result) => result,
        Err(panic) => Err(not_an_image(format!("the decoder gave up on it: {panic}"))),
    }
}

fn normalize(bytes: &[u8], max_side: u32) -> Result<Vec<u8>, HandlerError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| not_an_image(e.to_string()))?;
    if reader.format().is_none() {
        return Err(not_an_image(format!(
            "unknown format; the payload starts with {}",
            super::excerpt(bytes)
        )));
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);

    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(too_large(format!(
            "{width}x{height} pixels is over the limit of {} megapixels",
            MAX_PIXELS / (1024 * 1024)
        )));
    }
    if decoder.total_bytes() > MAX_ALLOC {
        return Err(too_large(format!(
            "{} bytes decoded is over the limit of {} MiB",
            decoder.total_bytes(),
            MAX_ALLOC / (1024 * 1024)
        )));
    }
    // A broken EXIF block is not worth failing the image for.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);

    let gray = to_gray(image);
    let (width, height) = gray.dimensions();
    if width == 0 || height == 0 {
        return Err(not_an_image("it has no pixels"));
    }
    let (new_width, new_height) = fit_within(width, height, max_side);
    let gray = if (new_width, new_height) == (width, height) {
        gray
    } else {
        imageops::resize(&gray, new_width, new_height, FilterType::Lanczos3)
    };

    let mut png = Vec::new();
    gray.write_with_encoder(PngEncoder::new(&mut png))
        .map_err(|e| HandlerError::transient(format!("could not encode the PNG: {e}")))?;
    Ok(png)
}

/// 8-bit grayscale; transparent pixels are composited over white, as on paper.
fn to_gray(image: DynamicImage) -> GrayImage {
    if !image.color().has_alpha() {
        return image.into_luma8();
    }
    let with_alpha = image.into_luma_alpha8();
    let (width, height) = with_alpha.dimensions();
    let mut gray = GrayImage::new(width, height);
    for (out, pixel) in gray.pixels_mut().zip(with_alpha.pixels()) {
        let [luma, alpha] = pixel.0;
        let (luma, alpha) = (u32::from(luma), u32::from(alpha));
        let blended = (luma * alpha + 255 * (255 - alpha) + 127) / 255;
        out.0[0] = u8::try_from(blended).unwrap_or(u8::MAX);
    }
    gray
}

/// The size of a `width` x `height` image scaled down to fit `max_side` x `max_side`,
/// keeping the aspect ratio; unchanged if it already fits.
fn fit_within(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let max_side = max_side.max(1);
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled =
            (u64::from(side) * u64::from(max_side) + u64::from(longest) / 2) / u64::from(longest);
        u32::try_from(scaled).unwrap_or(max_side).clamp(1, max_side)
    };
    (scale(width), scale(height))
}

fn decode_error(error: ImageError) -> HandlerError {
    match error {
        ImageError::Limits(e) => too_large(e.to_string()),
        other => not_an_image(other.to_string()),
    }
}

fn not_an_image(reason: impl std::fmt::Display) -> HandlerError {
    HandlerError::invalid_input(format!("not a PNG, JPEG or TIFF image: {reason}"))
}

fn too_large(reason: impl std::fmt::Display) -> HandlerError {
    HandlerError::invalid_input(format!("image too large: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::fit_within;

    #[test]
    fn fits_without_upscaling() {
        assert_eq!(fit_within(2000, 1000, 1024), (1024, 512));
        assert_eq!(fit_within(1000, 2000, 1024), (512, 1024));
        assert_eq!(fit_within(800, 600, 1024), (800, 600));
        assert_eq!(fit_within(1024, 1024, 1024), (1024, 1024));
        assert_eq!(fit_within(100_000, 1, 1024), (1024, 1));
        assert_eq!(fit_within(10, 10, 0), (1, 1));
    }
}
