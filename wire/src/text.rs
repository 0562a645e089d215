//! gRPC-Web text mode: the binary frames, base64-encoded. A client may send its body in
//! several chunks and pad each one (the spec allows it), so a request body is a sequence of
//! padded base64 segments; answers are one padded segment.

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD as PADDED};
use std::fmt;

/// Standard alphabet; each segment's padding may be present or left off.
const SEGMENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a text-mode body could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextError(String);

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed gRPC-Web text body: {}", self.0)
    }
}

impl std::error::Error for TextError {}

/// The binary body of a text-mode request. Line breaks between segments are ignored (some
/// clients wrap long bodies); any other byte outside the base64 alphabet is an error.
pub fn decode(body: &[u8]) -> Result<Vec<u8>, TextError> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 3);
    for line in body.split(|byte| matches!(byte, b'\r' | b'\n')) {
        let mut rest = line;
        while !rest.is_empty() {
            // A segment ends after its padding.
            let end = match rest.iter().position(|byte| *byte == b'=') {
                Some(pad) => pad + rest[pad..].iter().take_while(|byte| **byte == b'=').count(),
                None => rest.len(),
            };
            let (segment, tail) = rest.split_at(end);
            SEGMENT
                .decode_vec(segment, &mut out)
                .map_err(|error| TextError(error.to_string()))?;
            rest = tail;
        }
    }
    Ok(out)
}

/// The text-mode form of a binary answer body.
pub fn encode(body: &[u8]) -> Vec<u8> {
    PADDED.encode(body).into_bytes()
}

/// Decodes a text-mode body as it streams past (a host reading an answer's trailer frame):
/// complete 4-character groups are decoded as they arrive, the rest waits for the next chunk.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// The binary bytes `chunk` completes, or an error for bytes that are not base64.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<u8>, TextError> {
        self.pending
            .extend(chunk.iter().filter(|byte| !matches!(byte, b'\r' | b'\n')));
        let whole = self.pending.len() / 4 * 4;
        let decoded = decode(&self.pending[..whole])?;
        self.pending.drain(..whole);
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_segments_decode_as_one_body() {
        let body = [0u8, 0, 0, 0, 2, 10, 0];
        assert_eq!(decode(&encode(&body)).unwrap(), body);
        // Chunks padded one by one: "AAAA" "AA==" "Cg==" "AA==" is 0,0,0 | 0 | 10 | 0.
        assert_eq!(decode(b"AAAAAA==Cg==AA==").unwrap(), [0, 0, 0, 0, 10, 0]);
        // Unpadded, wrapped over lines.
        assert_eq!(decode(b"AAAA\r\nAAIKAA").unwrap(), [0, 0, 0, 0, 2, 10, 0]);
        assert_eq!(decode(b"").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn bad_base64_is_an_error() {
        for bad in [
            &b"A"[..],
            b"AAA*",
            b"AA=A",
            b"AAAAA===",
            b"{\"phone\":1}",
            b"AB==",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn streams_decode_across_chunks() {
        let encoded = encode(b"grpc-status:0\r\n");
        let mut decoder = StreamDecoder::default();
        let mut out = Vec::new();
        for chunk in encoded.chunks(3) {
            out.extend(decoder.feed(chunk).unwrap());
        }
        assert_eq!(out, b"grpc-status:0\r\n");
    }
}
