//! A page image to a model input: the `image-normalize` pre-processing (decode PNG, JPEG
//! or TIFF, orientation, grayscale, at most 1024 px a side), then a resize to the
//! model's height and width and values in `[0, 1]` (1 = white paper), channel-major.

use image::imageops::{self, FilterType};
use image::{GrayImage, ImageFormat};
use marie_handlers::{DEFAULT_MAX_SIDE, normalize_image};
use marie_protocol::HandlerError;

use crate::config::InputShape;

/// The model input for a page image. Blocking and CPU-bound. An undecodable payload is
/// [`HandlerError::invalid_input`], as for `image-normalize`.
pub fn page_input(bytes: &[u8], shape: InputShape) -> Result<Vec<f32>, HandlerError> {
    let png = normalize_image(bytes, DEFAULT_MAX_SIDE)?;
    let gray = image::load_from_memory_with_format(&png, ImageFormat::Png)
        .map_err(|e| HandlerError::transient(format!("cannot read back the normalized page: {e}")))?
        .into_luma8();
    Ok(gray_input(&gray, shape))
}

/// The model input for a grayscale image: resized (triangle filter, aspect not kept) to
/// the model's height and width unless it has them already, scaled to `[0, 1]`, and
/// repeated for each channel.
pub fn gray_input(gray: &GrayImage, shape: InputShape) -> Vec<f32> {
    let (width, height) = (dimension(shape.width), dimension(shape.height));
    let resized;
    let image = if gray.dimensions() == (width, height) {
        gray
    } else {
        resized = imageops::resize(gray, width, height, FilterType::Triangle);
        &resized
    };
    let plane: Vec<f32> = image.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect();
    let mut input = Vec::with_capacity(shape.len());
    for _ in 0..shape.channels {
        input.extend_from_slice(&plane);
    }
    input
}

fn dimension(side: usize) -> u32 {
    u32::try_from(side).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(channels: usize) -> InputShape {
        InputShape {
            channels,
            height: 4,
            width: 4,
        }
    }

    #[test]
    fn a_page_of_the_input_size_is_taken_pixel_for_pixel() {
        let mut gray = GrayImage::from_pixel(4, 4, image::Luma([255]));
        gray.put_pixel(1, 2, image::Luma([0]));
        let input = gray_input(&gray, shape(1));
        assert_eq!(input.len(), 16);
        assert_eq!(input[2 * 4 + 1], 0.0);
        assert_eq!(input.iter().filter(|&&v| v == 1.0).count(), 15);
    }

    #[test]
    fn larger_pages_are_resized_and_channels_repeated() {
        let gray = GrayImage::from_pixel(40, 50, image::Luma([51]));
        let input = gray_input(&gray, shape(3));
        assert_eq!(input.len(), 3 * 16);
        assert!(input.iter().all(|v| (v - 0.2).abs() < 1e-6), "{input:?}");
    }

    #[test]
    fn an_undecodable_page_is_invalid_input() {
        let err = page_input(b"not an image", shape(1)).unwrap_err();
        assert_eq!(err.kind, marie_protocol::HandlerErrorKind::InvalidInput);
    }
}
