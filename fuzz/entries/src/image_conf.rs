//! `image_conf`: an upload's `image.conf` (`companion::program::image_conf::parse`), the
//! table sizes it asks rt-core for.

use openplc_companion::program::image_conf::{ImageConfError, MAX_BYTES, parse};
use shared_abi::image::TABLE_CAPACITY;
use shared_abi::sizes::{ImageRequest, ImageSizes, Table};

pub fn run(data: &[u8]) {
    match parse(data) {
        Ok(sizes) => {
            // What the file asks for stays inside the layout, table by table, and travels
            // to rt-core intact (the Load command's own encoding checks it again).
            for t in Table::ALL {
                assert!(sizes.get(t) <= TABLE_CAPACITY, "{} = {}", t.key(), sizes.get(t));
            }
            let request = ImageRequest { configured: sizes, square: false };
            let bytes = postcard::to_allocvec(&request).unwrap_or_else(|e| panic!("encoding: {e}"));
            let back: ImageRequest = postcard::from_bytes(&bytes).unwrap_or_else(|e| panic!("decoding: {e}"));
            assert_eq!(back, request);
            assert_eq!(request.resolve(&ImageSizes::ZERO), sizes, "nothing below the configured sizes");
            assert!(data.len() <= MAX_BYTES);
        }
        Err(e) => {
            let text = e.to_string();
            assert!(text.starts_with("image.conf"), "{text}");
            if let ImageConfError::TooLarge { bytes } = e {
                assert!(bytes > MAX_BYTES);
            }
        }
    }
}
