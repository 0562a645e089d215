//! RS256 and PS256 signatures (RSASSA-PKCS1-v1_5 and RSASSA-PSS with SHA-256, RFC 8017 §8)
//! checked by a small RSA public-key operation written for WebAssembly (`montgomery.rs`; the
//! `rsa` crate's 64-bit digits need 128-bit products, which wasm emulates, and cost eight times as
//! much; `bench/verify` measures both).
//!
//! Only public values take part (the key, the token, its signature), so nothing here needs to
//! run in constant time. PKCS#1 v1.5 padding is never parsed: the encoded message the signature
//! must open to is built from the hash and compared whole (PSS's salt leaves no such choice).

mod montgomery;

use montgomery::Modulus;
use sha2::{Digest, Sha256};

/// The smallest modulus accepted. RFC 7518 §3.3 requires 2048 bits for RS256, ZITADEL's keys
/// have 2048, and smaller keys can be factored with public effort.
pub const MIN_MODULUS_BITS: usize = 2048;
/// The largest modulus accepted (as the `rsa` crate before): the cost grows with its square,
/// and no issuer needs more.
pub const MAX_MODULUS_BITS: usize = 4096;
/// The largest public exponent accepted (as the `rsa` crate before); ZITADEL's is 65537.
const MAX_EXPONENT: u64 = (1 << 33) - 1;

/// `DigestInfo` for SHA-256 in DER, the part of the encoded message before the hash
/// (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// An RSA public key, ready for Montgomery arithmetic.
#[derive(Debug)]
pub struct PublicKey {
    /// The modulus's big-endian bytes, the first not zero.
    n: Vec<u8>,
    modulus: Modulus,
    /// The modulus's length in bits.
    bits: usize,
    e: u64,
}

impl PublicKey {
    /// The key with modulus `n` and public exponent `e`, both big-endian (as in a JWK, whose
    /// leading zero bytes are ignored). The error is for the log.
    pub fn new(n: &[u8], e: &[u8]) -> Result<Self, String> {
        let n = strip_leading_zeros(n);
        let bits = n
            .first()
            .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
            return Err(format!(
                "RSA modulus of {bits} bits (accepted: {MIN_MODULUS_BITS} to {MAX_MODULUS_BITS})"
            ));
        }
        if n.last().is_some_and(|low| low % 2 == 0) {
            return Err("RSA modulus is even".into());
        }
        let e = strip_leading_zeros(e);
        if e.len() > 8 {
            return Err("RSA exponent too large".into());
        }
        let e = e
            .iter()
            .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte));
        if !(3..=MAX_EXPONENT).contains(&e) || e % 2 == 0 {
            return Err(format!("RSA exponent {e} not accepted"));
        }
        Ok(Self {
            n: n.to_vec(),
            modulus: Modulus::new(n, bits),
            bits,
            e,
        })
    }

    /// Checks an RS256 `signature` of `message`.
    pub fn verify_rs256(&self, message: &[u8], signature: &[u8]) -> Result<(), String> {
        let opened = self.open(signature)?;
        if opened != self.pkcs1_v15_sha256(&Sha256::digest(message)) {
            return Err("RSA signature does not match".into());
        }
        Ok(())
    }

    /// Checks a PS256 `signature` of `message`: RSASSA-PSS with SHA-256, MGF1 over SHA-256 and a
    /// salt as long as the hash (RFC 7518 §3.5), by RFC 8017 §9.1.2's EMSA-PSS-VERIFY.
    pub fn verify_ps256(&self, message: &[u8], signature: &[u8]) -> Result<(), String> {
        const HASH: usize = 32;
        const SALT: usize = HASH;
        let refused = || Err("RSA-PSS signature does not match".to_string());
        let opened = self.open(signature)?;
        // The encoded message has emBits = modBits − 1 bits, so 8·emLen − emBits leading zero
        // bits; when emBits is a multiple of 8 it is a byte shorter than the modulus.
        let em_bits = self.bits - 1;
        let em_len = em_bits.div_ceil(8);
        let (leading, em) = opened.split_at(self.size() - em_len);
        let unused_bits = 8 * em_len - em_bits;
        // Step 3 holds for every accepted modulus: emLen ≥ 255 > hLen + sLen + 2.
        if leading.iter().any(|&b| b != 0)
            || em[em_len - 1] != 0xbc
            || u32::from(em[0]) >> (8 - unused_bits) != 0
        {
            return refused();
        }
        let (masked_db, rest) = em.split_at(em_len - HASH - 1);
        let h = &rest[..HASH];
        let mut db = mgf1_sha256(h, masked_db.len());
        for (byte, masked) in db.iter_mut().zip(masked_db) {
            *byte ^= masked;
        }
        db[0] &= 0xff >> unused_bits;
        // DB = PS (zeros) || 01 || salt.
        let padding = em_len - HASH - SALT - 2;
        if db[..padding].iter().any(|&b| b != 0) || db[padding] != 0x01 {
            return refused();
        }
        let salt = &db[padding + 1..];
        let expected = Sha256::new()
            .chain_update([0u8; 8])
            .chain_update(Sha256::digest(message))
            .chain_update(salt)
            .finalize();
        if expected[..] != *h {
            return refused();
        }
        Ok(())
    }

    /// `signature^e mod n`, as many bytes as the modulus (RFC 8017's RSAVP1 after its checks).
    fn open(&self, signature: &[u8]) -> Result<Vec<u8>, String> {
        if signature.len() != self.size() {
            return Err(format!(
                "RSA signature of {} bytes for a {}-byte modulus",
                signature.len(),
                self.size()
            ));
        }
        // Big-endian numbers of as many bytes compare as their bytes do.
        if signature >= &self.n[..] {
            return Err("RSA signature not below the modulus".into());
        }
        Ok(self.modulus.power(signature, self.e, self.size()))
    }

    /// The modulus's length in bytes: the length of every signature.
    fn size(&self) -> usize {
        self.n.len()
    }

    /// EMSA-PKCS1-v1_5 encoding of a SHA-256 `hash` (RFC 8017 §9.2):
    /// `00 01 FF…FF 00 DigestInfo hash`, as long as the modulus.
    fn pkcs1_v15_sha256(&self, hash: &[u8]) -> Vec<u8> {
        let mut encoded = vec![0xff; self.size()];
        encoded[0] = 0x00;
        encoded[1] = 0x01;
        let tail = SHA256_DIGEST_INFO.len() + hash.len();
        let start = self.size() - tail;
        encoded[start - 1] = 0x00;
        encoded[start..start + SHA256_DIGEST_INFO.len()].copy_from_slice(&SHA256_DIGEST_INFO);
        encoded[self.size() - hash.len()..].copy_from_slice(hash);
        encoded
    }
}

/// MGF1 with SHA-256 (RFC 8017 §B.2.1): `len` bytes of `SHA-256(seed || counter)`.
fn mgf1_sha256(seed: &[u8], len: usize) -> Vec<u8> {
    let mut mask = Vec::with_capacity(len + 32);
    let mut counter = 0u32;
    while mask.len() < len {
        mask.extend(
            Sha256::new()
                .chain_update(seed)
                .chain_update(counter.to_be_bytes())
                .finalize(),
        );
        counter += 1;
    }
    mask.truncate(len);
    mask
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    &bytes[zeros..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, EncodingKey};

    fn testdata(file: &str) -> String {
        let path = format!("{}/src/auth/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The JWK's `n` and `e` of the test key `name`, made with `openssl genrsa`.
    fn components(name: &str) -> (Vec<u8>, Vec<u8>) {
        let jwk: serde_json::Value =
            serde_json::from_str(&testdata(&format!("rsa-{name}.jwk.json"))).unwrap();
        let field = |f: &str| URL_SAFE_NO_PAD.decode(jwk[f].as_str().unwrap()).unwrap();
        (field("n"), field("e"))
    }

    fn key(name: &str) -> PublicKey {
        let (n, e) = components(name);
        PublicKey::new(&n, &e).unwrap()
    }

    /// A signature of `message` by the test key `name`, made by jsonwebtoken (the `rsa` crate).
    fn sign(name: &str, alg: Algorithm, message: &[u8]) -> Vec<u8> {
        let pem = testdata(&format!("rsa-{name}.pem"));
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        let signature = jsonwebtoken::crypto::sign(message, &key, alg).unwrap();
        URL_SAFE_NO_PAD.decode(signature).unwrap()
    }

    const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ";

    #[test]
    fn a_token_signed_by_openssl_verifies() {
        let token = testdata("rsa-a.openssl.jwt");
        let (message, signature) = token.trim().rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        assert_eq!(
            key("a").verify_rs256(message.as_bytes(), &signature),
            Ok(())
        );
        assert!(
            key("b")
                .verify_rs256(message.as_bytes(), &signature)
                .is_err()
        );
    }

    #[test]
    fn signatures_by_keys_of_every_accepted_shape_verify() {
        // 2048, 3072 and 4096 bits; 2050 bits (a top limb of 2 bits); exponent 3.
        for name in ["a", "b", "c", "d", "odd", "three"] {
            let key = key(name);
            for message in [MESSAGE, b"", b"a.b", &[0xff; 300][..]] {
                let signature = sign(name, Algorithm::RS256, message);
                assert_eq!(key.verify_rs256(message, &signature), Ok(()), "key {name}");
            }
        }
    }

    #[test]
    fn flipped_bits_in_the_message_or_signature_are_refused() {
        let key = key("a");
        let signature = sign("a", Algorithm::RS256, MESSAGE);
        // One bit in every byte of the message, and in every third byte of the signature, each
        // byte a different bit of the eight (debug builds check slowly).
        for byte in 0..MESSAGE.len() {
            let mut message = MESSAGE.to_vec();
            message[byte] ^= 1 << (byte % 8);
            assert!(
                key.verify_rs256(&message, &signature).is_err(),
                "message byte {byte}"
            );
        }
        for byte in (0..signature.len()).step_by(3) {
            let mut flipped = signature.clone();
            flipped[byte] ^= 1 << (byte % 8);
            assert!(
                key.verify_rs256(MESSAGE, &flipped).is_err(),
                "signature byte {byte}"
            );
        }
    }

    #[test]
    fn a_signature_by_another_key_is_refused() {
        let signature = sign("b", Algorithm::RS256, MESSAGE);
        assert_eq!(
            key("a").verify_rs256(MESSAGE, &signature),
            Err("RSA signature does not match".into())
        );
    }

    #[test]
    fn a_pss_signature_is_not_a_pkcs1_v15_one() {
        for alg in [Algorithm::PS256, Algorithm::RS384, Algorithm::RS512] {
            let signature = sign("a", alg, MESSAGE);
            assert_eq!(
                key("a").verify_rs256(MESSAGE, &signature),
                Err("RSA signature does not match".into()),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn signatures_not_below_the_modulus_are_refused() {
        let (n, _) = components("a");
        let key = key("a");
        let mut n_plus_one = n.clone();
        *n_plus_one.last_mut().unwrap() += 1; // n is odd: no carry
        for signature in [n.clone(), n_plus_one, vec![0xff; n.len()]] {
            assert_eq!(
                key.verify_rs256(MESSAGE, &signature),
                Err("RSA signature not below the modulus".into())
            );
        }
        // n − 1 is below: it opens, to something else.
        let mut n_minus_one = n;
        *n_minus_one.last_mut().unwrap() -= 1;
        assert_eq!(
            key.verify_rs256(MESSAGE, &n_minus_one),
            Err("RSA signature does not match".into())
        );
    }

    #[test]
    fn signatures_of_another_length_are_refused() {
        let key = key("a");
        let signature = sign("a", Algorithm::RS256, MESSAGE);
        let longer = [&[0][..], &signature].concat();
        for wrong in [&signature[1..], &signature[..255], &longer, &[]] {
            assert!(
                key.verify_rs256(MESSAGE, wrong)
                    .is_err_and(|e| e.contains("-byte modulus")),
                "{} bytes",
                wrong.len()
            );
        }
    }

    #[test]
    fn the_exponent_is_the_jwks() {
        // Key "three" signs with e = 3; told e = 65537, its signatures fail, and the reverse.
        let (n, _) = components("three");
        let signature = sign("three", Algorithm::RS256, MESSAGE);
        let claimed = PublicKey::new(&n, &[1, 0, 1]).unwrap();
        assert!(claimed.verify_rs256(MESSAGE, &signature).is_err());
        let (n, _) = components("a");
        let signature = sign("a", Algorithm::RS256, MESSAGE);
        assert!(
            PublicKey::new(&n, &[3])
                .unwrap()
                .verify_rs256(MESSAGE, &signature)
                .is_err()
        );
        // Leading zero bytes change nothing.
        let padded = PublicKey::new(&[&[0, 0][..], &n].concat(), &[0, 1, 0, 1]).unwrap();
        assert_eq!(padded.verify_rs256(MESSAGE, &signature), Ok(()));
    }

    #[test]
    fn keys_outside_the_accepted_range_are_refused() {
        let (short, _) = components("short");
        let (huge, _) = components("huge");
        let (n, _) = components("a");
        let mut even = n.clone();
        *even.last_mut().unwrap() ^= 1;
        let refused = |n: &[u8], e: &[u8]| PublicKey::new(n, e).unwrap_err();
        assert!(refused(&short, &[1, 0, 1]).contains("1024 bits"));
        assert!(refused(&huge, &[1, 0, 1]).contains("8192 bits"));
        let mut one_bit_short = n.clone();
        one_bit_short[0] = 0x7f;
        assert!(refused(&one_bit_short, &[1, 0, 1]).contains("2047 bits"));
        assert!(refused(&[], &[1, 0, 1]).contains("0 bits"));
        assert_eq!(refused(&even, &[1, 0, 1]), "RSA modulus is even");
        for e in [&[][..], &[1], &[2], &[1, 0, 0], &[2, 0, 0, 0, 1], &[1; 9]] {
            assert!(refused(&n, e).contains("exponent"), "{e:?}");
        }
        assert!(PublicKey::new(&n, &[1, 0xff, 0xff, 0xff, 0xff]).is_ok());
    }

    /// The token's signing input and signature.
    fn split(token: &str) -> (Vec<u8>, Vec<u8>) {
        let (message, signature) = token.trim().rsplit_once('.').unwrap();
        (message.into(), URL_SAFE_NO_PAD.decode(signature).unwrap())
    }

    #[test]
    fn pss_signatures_verify_as_ps256_only() {
        // 2049 bits: the encoded message is a byte shorter than the modulus; 2050 bits: its
        // top byte has 7 unused bits.
        for name in ["a", "c", "d", "odd", "byte", "three"] {
            let key = key(name);
            for message in [MESSAGE, b""] {
                let signature = sign(name, Algorithm::PS256, message);
                assert_eq!(key.verify_ps256(message, &signature), Ok(()), "key {name}");
                assert!(key.verify_rs256(message, &signature).is_err(), "key {name}");
                let signature = sign(name, Algorithm::RS256, message);
                assert!(key.verify_ps256(message, &signature).is_err(), "key {name}");
            }
        }
        let (message, signature) = split(&testdata("rsa-a.openssl-ps256.jwt"));
        assert_eq!(key("a").verify_ps256(&message, &signature), Ok(()));
        assert!(key("b").verify_ps256(&message, &signature).is_err());
    }

    #[test]
    fn pss_signatures_with_another_salt_length_or_flipped_bits_are_refused() {
        // RFC 7518 §3.5: the salt is as long as the hash; openssl's was 20 bytes here.
        let (message, signature) = split(&testdata("rsa-a.openssl-ps256-salt20.jwt"));
        let key = key("a");
        assert!(key.verify_ps256(&message, &signature).is_err());
        let signature = sign("a", Algorithm::PS256, MESSAGE);
        for byte in (0..signature.len()).step_by(3) {
            let mut flipped = signature.clone();
            flipped[byte] ^= 1 << (byte % 8);
            assert!(key.verify_ps256(MESSAGE, &flipped).is_err(), "byte {byte}");
        }
        for byte in 0..MESSAGE.len() {
            let mut message = MESSAGE.to_vec();
            message[byte] ^= 1 << (byte % 8);
            assert!(
                key.verify_ps256(&message, &signature).is_err(),
                "byte {byte}"
            );
        }
        assert!(key.verify_ps256(MESSAGE, &signature[1..]).is_err());
    }

    #[test]
    fn the_encoded_message_is_rfc_8017s() {
        // RFC 8017 §9.2 for a 256-byte modulus: 00 01, 202 bytes FF, 00, DigestInfo, hash.
        let hash = [0xab; 32];
        let encoded = key("a").pkcs1_v15_sha256(&hash);
        let expected = [
            &[0x00, 0x01][..],
            &[0xff; 202],
            &[0x00],
            &hex::decode("3031300d060960864801650304020105000420").unwrap(),
            &hash,
        ]
        .concat();
        assert_eq!(encoded, expected);
    }
}
