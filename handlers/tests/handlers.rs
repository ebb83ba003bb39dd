//! The built-in handlers: echo, sleep, pdf-text, image-normalize, and the registry.

use std::io::Cursor;
use std::time::Duration;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use lopdf::{Document, Object};
use marie_handlers::{
    BUILTIN, Echo, Handler, ImageNormalize, JobInput, PdfText, PdfTextOutput, Sleep,
    normalize_image,
};
use marie_protocol::{HandlerError, HandlerErrorKind, JobMetadata};

mod fixtures;
use fixtures::{colour_image, pdf_with_pages};

fn input(payload: impl Into<Vec<u8>>) -> JobInput {
    JobInput {
        payload: payload.into(),
        metadata: JobMetadata::default(),
    }
}

fn assert_invalid_input(result: Result<Vec<u8>, HandlerError>, needle: &str) -> String {
    match result {
        Ok(out) => panic!("expected invalid_input, got {} bytes of output", out.len()),
        Err(e) => {
            assert_eq!(e.kind, HandlerErrorKind::InvalidInput, "{e}");
            assert!(
                e.message.contains(needle),
                "{:?} lacks {needle:?}",
                e.message
            );
            e.message
        }
    }
}

fn two_page_pdf() -> Vec<u8> {
    pdf_with_pages(&["Hello from page one", "Second page says goodbye"])
}

fn assert_normalized_png(png: &[u8], width: u32, height: u32) {
    assert_eq!(image::guess_format(png).unwrap(), ImageFormat::Png);
    let decoded = image::load_from_memory_with_format(png, ImageFormat::Png).unwrap();
    assert_eq!(decoded.color(), image::ColorType::L8);
    assert_eq!((decoded.width(), decoded.height()), (width, height));
}

#[tokio::test]
async fn echo_returns_the_payload() {
    let payload = b"\x00binary\xffpayload".to_vec();
    assert_eq!(Echo.run(input(payload.clone())).await.unwrap(), payload);
    assert_eq!(Echo.run(input(Vec::new())).await.unwrap(), Vec::<u8>::new());
}

#[tokio::test(start_paused = true)]
async fn sleep_sleeps_for_the_given_milliseconds() {
    let start = tokio::time::Instant::now();
    let out = Sleep.run(input(" 250\n")).await.unwrap();
    assert_eq!(out, b" 250\n");
    assert_eq!(start.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn sleep_is_cancelled_by_dropping_it() {
    let run = Sleep.run(input("60000"));
    let timed_out = tokio::time::timeout(Duration::from_millis(10), run).await;
    assert!(timed_out.is_err());
}

#[tokio::test]
async fn sleep_rejects_a_non_number() {
    let message = assert_invalid_input(
        Sleep.run(input("abc")).await,
        "sleep expects the payload to be a number of milliseconds, e.g. 250; got \"abc\"",
    );
    assert!(!message.is_empty());
    assert_invalid_input(Sleep.run(input("-5")).await, "number of milliseconds");
    assert_invalid_input(Sleep.run(input(vec![0xff, 0xfe])).await, "got");
}

#[tokio::test]
async fn pdf_text_returns_each_page() {
    let out = PdfText.run(input(two_page_pdf())).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let pages = json["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2, "{json}");
    assert_eq!(pages[0]["page"], 1);
    assert_eq!(pages[1]["page"], 2);
    let parsed: PdfTextOutput = serde_json::from_slice(&out).unwrap();
    assert_eq!(parsed.pages[0].text, "Hello from page one");
    assert_eq!(parsed.pages[1].text, "Second page says goodbye");
}

#[tokio::test]
async fn pdf_text_rejects_garbage() {
    assert_invalid_input(
        PdfText.run(input("this is not a PDF at all")).await,
        "not a readable PDF",
    );
    assert_invalid_input(PdfText.run(input(Vec::new())).await, "not a readable PDF");
    assert_invalid_input(
        PdfText
            .run(input(b"%PDF-1.7\n\x00\x01garbage".to_vec()))
            .await,
        "not a readable PDF",
    );
}

#[tokio::test]
async fn pdf_text_rejects_a_truncated_pdf() {
    let pdf = two_page_pdf();
    for len in [pdf.len() / 2, 20, pdf.len() - 40] {
        assert_invalid_input(
            PdfText.run(input(pdf[..len].to_vec())).await,
            "not a readable PDF",
        );
    }
}

#[tokio::test]
async fn pdf_text_turns_a_parser_panic_into_invalid_input() {
    // A font with an encoding pdf-extract does not know makes it panic.
    let mut doc = Document::load_mem(&two_page_pdf()).unwrap();
    for object in doc.objects.values_mut() {
        if let Ok(dict) = object.as_dict_mut()
            && dict.has_type(b"Font")
        {
            dict.set("Encoding", Object::Name(b"NoSuchEncoding".to_vec()));
        }
    }
    let mut pdf = Vec::new();
    doc.save_to(&mut pdf).unwrap();
    let message = assert_invalid_input(PdfText.run(input(pdf)).await, "not a readable PDF");
    assert!(message.contains("gave up"), "{message}");
    // The executor (this runtime) is still fine.
    assert!(PdfText.run(input(two_page_pdf())).await.is_ok());
}

#[tokio::test]
async fn image_normalize_makes_a_grayscale_png_within_the_maximum_side() {
    // The three run side by side on the blocking pool: unoptimized builds are slow.
    let normalize = |format: ImageFormat| async move {
        let payload = tokio::task::spawn_blocking(move || colour_image(format))
            .await
            .unwrap();
        let out = ImageNormalize::default().run(input(payload)).await;
        out.unwrap_or_else(|e| panic!("{format:?}: {e}"))
    };
    let (png, jpeg, tiff) = tokio::join!(
        normalize(ImageFormat::Png),
        normalize(ImageFormat::Jpeg),
        normalize(ImageFormat::Tiff),
    );
    for out in [png, jpeg, tiff] {
        assert_normalized_png(&out, 1024, 512);
    }
}

#[test]
fn normalize_image_never_upscales() {
    let small = RgbImage::from_pixel(300, 200, Rgb([10, 200, 30]));
    let mut bytes = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(small)
        .write_to(&mut bytes, ImageFormat::Png)
        .unwrap();
    let out = normalize_image(bytes.get_ref(), 1024).unwrap();
    assert_normalized_png(&out, 300, 200);
    let out = normalize_image(bytes.get_ref(), 100).unwrap();
    assert_normalized_png(&out, 100, 67);
}

#[tokio::test]
async fn image_normalize_rejects_garbage() {
    let normalize = ImageNormalize::default();
    assert_invalid_input(
        normalize.run(input("definitely not an image")).await,
        "not a PNG, JPEG or TIFF image",
    );
    assert_invalid_input(
        normalize.run(input(Vec::new())).await,
        "not a PNG, JPEG or TIFF image",
    );
    let png = colour_image(ImageFormat::Png);
    assert_invalid_input(
        normalize.run(input(png[..png.len() / 3].to_vec())).await,
        "not a PNG, JPEG or TIFF image",
    );
}

#[test]
fn normalize_image_refuses_a_decompression_bomb() {
    // A valid PNG header claiming 100000 x 100000 pixels.
    let mut png = Vec::new();
    png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let empty_zlib = [0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01];
    for (kind, data) in [
        (&b"IHDR"[..], &ihdr[4..]),
        (b"IDAT", &empty_zlib[..]),
        (b"IEND", &[][..]),
    ] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        png.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    let error = normalize_image(&png, 1024).unwrap_err();
    assert_eq!(error.kind, HandlerErrorKind::InvalidInput);
    assert!(
        error.message.contains("image too large"),
        "{}",
        error.message
    );
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn registry_builds_from_builtin_names() {
    let names: Vec<String> = BUILTIN.iter().map(|s| s.to_string()).collect();
    let registry = marie_handlers::registry(&names).unwrap();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(registry.names(), expected);
    for name in BUILTIN {
        assert!(marie_handlers::builtin(name).is_some(), "{name}");
    }
}

#[test]
fn registry_refuses_an_unknown_name() {
    let names = vec!["echo".to_string(), "ocr".to_string()];
    let error = marie_handlers::registry(&names).unwrap_err();
    assert_eq!(error.name, "ocr");
    let message = error.to_string();
    assert!(message.contains("\"ocr\""), "{message}");
    for name in BUILTIN {
        assert!(message.contains(name), "{message} lacks {name}");
    }
    assert!(marie_handlers::builtin("ocr").is_none());
}
