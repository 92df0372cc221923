//! Reading QR images back with a real decoder (rqrr), so tests check what a
//! phone would read, not what the encoder meant to write.

/// Decodes a PNG to exactly one QR payload; returns (width, height, payload).
pub fn decode_png_qr(bytes: &[u8]) -> (u32, u32, String) {
    let (w, h, luma) = decode_png(bytes);
    let text = decode_qr(w, h, &luma);
    (w, h, text)
}

/// Decodes a PNG into (width, height, 8-bit luma per pixel).
pub fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).expect("PNG frame");
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => panic!("EXPAND should have removed the palette"),
    };
    assert_eq!(frame.bit_depth, png::BitDepth::Eight);
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut luma = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = &buf[y * frame.line_size..][..w * channels];
        for px in row.chunks_exact(channels) {
            let l = if channels >= 3 {
                (299 * u32::from(px[0]) + 587 * u32::from(px[1]) + 114 * u32::from(px[2])) / 1000
            } else {
                u32::from(px[0])
            };
            luma.push(l as u8);
        }
    }
    (frame.width, frame.height, luma)
}

pub fn decode_qr(width: u32, height: u32, luma: &[u8]) -> String {
    let (w, h) = (width as usize, height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| luma[y * w + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "expected exactly one QR code in the image");
    let (_meta, content) = grids[0].decode().expect("QR decodes");
    content
}
