//! RS256 and PS256 signatures (RSASSA-PKCS1-v1_5 and RSASSA-PSS with SHA-256, RFC 8017 §8)
//! checked by a small RSA public-key operation written for WebAssembly: Montgomery multiplication over 32-bit limbs with
//! 64-bit products, which wasm multiplies natively (the `rsa` crate's 64-bit digits need 128-bit
//! products, which wasm emulates, and cost 2.5× as much; `bench/verify` measures both).
//!
//! Only public values take part (the key, the token, its signature), so nothing here needs to
//! run in constant time. PKCS#1 v1.5 padding is never parsed: the encoded message the signature
//! must open to is built from the hash and compared whole (PSS's salt leaves no such choice).

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
    /// The modulus in 32-bit limbs, least significant first; the top limb is not zero.
    n: Vec<u32>,
    /// The modulus's length in bytes: the length of every signature.
    size: usize,
    /// The modulus's length in bits.
    bits: usize,
    e: u64,
    /// `-n⁻¹ mod 2³²`.
    n0_inverse: u32,
    /// `R² mod n`, with `R = 2^(32·limbs)`: takes a number into Montgomery form.
    r_squared: Vec<u32>,
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
        let n_limbs = limbs(n);
        let n0_inverse = negated_inverse(n_limbs[0]);
        let r_squared = r_squared(&n_limbs, n0_inverse, bits);
        Ok(Self {
            n: n_limbs,
            size: n.len(),
            bits,
            e,
            n0_inverse,
            r_squared,
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
        let (leading, em) = opened.split_at(self.size - em_len);
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
        if signature.len() != self.size {
            return Err(format!(
                "RSA signature of {} bytes for a {}-byte modulus",
                signature.len(),
                self.size
            ));
        }
        let s = limbs(signature);
        if !less(&s, &self.n) {
            return Err("RSA signature not below the modulus".into());
        }
        // Square and multiply from the exponent's top bit, in Montgomery form.
        let base = self.multiply(&s, &self.r_squared);
        let mut power = base.clone();
        for bit in (0..63 - self.e.leading_zeros()).rev() {
            power = self.square(&power);
            if self.e >> bit & 1 == 1 {
                power = self.multiply(&power, &base);
            }
        }
        let mut one = vec![0; self.n.len()];
        one[0] = 1;
        Ok(big_endian(&self.multiply(&power, &one), self.size))
    }

    /// EMSA-PKCS1-v1_5 encoding of a SHA-256 `hash` (RFC 8017 §9.2):
    /// `00 01 FF…FF 00 DigestInfo hash`, as long as the modulus.
    fn pkcs1_v15_sha256(&self, hash: &[u8]) -> Vec<u8> {
        let mut encoded = vec![0xff; self.size];
        encoded[0] = 0x00;
        encoded[1] = 0x01;
        let tail = SHA256_DIGEST_INFO.len() + hash.len();
        let start = self.size - tail;
        encoded[start - 1] = 0x00;
        encoded[start..start + SHA256_DIGEST_INFO.len()].copy_from_slice(&SHA256_DIGEST_INFO);
        encoded[self.size - hash.len()..].copy_from_slice(hash);
        encoded
    }

    /// Montgomery square `a²·R⁻¹ mod n` of `a < n`: the square first, each product of two
    /// different limbs computed once and doubled, then reduced, where [`PublicKey::multiply`]
    /// computes every product. Three quarters of the limb products, and all but one of a
    /// verification's Montgomery operations are squares (e = 65537: 16 of 17).
    fn square(&self, a: &[u32]) -> Vec<u32> {
        let n = &self.n;
        let len = n.len();
        debug_assert_eq!(a.len(), len);
        // a² needs 2·len limbs; one more takes the reduction's carry out of the top.
        let mut t = vec![0u32; 2 * len + 1];
        // The products a[i]·a[j] with i < j, row by row.
        for (i, &a_i) in a.iter().enumerate() {
            let mut carry = 0u64;
            for (t_limb, &a_j) in t[2 * i + 1..].iter_mut().zip(&a[i + 1..]) {
                let sum = u64::from(*t_limb) + u64::from(a_i) * u64::from(a_j) + carry;
                *t_limb = sum as u32;
                carry = sum >> 32;
            }
            // Rows before this one reached position i + len - 1 at most.
            t[i + len] = carry as u32;
        }
        // Doubled, plus the squares a[i]² at position 2i. The result is below 2^(64·len).
        let mut shifted_out = 0u32;
        let mut carry = 0u64;
        for (pair, &a_i) in t.chunks_exact_mut(2).zip(a) {
            let square = u64::from(a_i) * u64::from(a_i);
            for (limb, half) in pair.iter_mut().zip([square as u32, (square >> 32) as u32]) {
                let doubled = (*limb << 1) | shifted_out;
                shifted_out = *limb >> 31;
                let sum = u64::from(doubled) + u64::from(half) + carry;
                *limb = sum as u32;
                carry = sum >> 32;
            }
        }
        debug_assert!(shifted_out == 0 && carry == 0, "a² fits in 2·len limbs");
        // Montgomery reduction: len times, add m·n so that the lowest limb becomes zero.
        for i in 0..len {
            let m = t[i].wrapping_mul(self.n0_inverse);
            let mut carry = 0u64;
            for (t_limb, &n_limb) in t[i..i + len].iter_mut().zip(n) {
                let sum = u64::from(*t_limb) + u64::from(m) * u64::from(n_limb) + carry;
                *t_limb = sum as u32;
                carry = sum >> 32;
            }
            for t_limb in &mut t[i + len..] {
                if carry == 0 {
                    break;
                }
                let sum = u64::from(*t_limb) + carry;
                *t_limb = sum as u32;
                carry = sum >> 32;
            }
        }
        // t / R, below 2n: its top limb is 0 or 1.
        let mut result = t.split_off(len);
        let top = result.pop().unwrap_or(0);
        if top != 0 || !less(&result, n) {
            subtract(&mut result, n);
        }
        result
    }

    /// Montgomery product `a·b·R⁻¹ mod n` of `a, b < n` (coarsely integrated operand
    /// scanning: one limb of `b`, then one reduction step, per round).
    fn multiply(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let n = &self.n;
        let len = n.len();
        // `t` stays below 2n, so one limb above the modulus's and one bit above that suffice.
        let mut t = vec![0u32; len + 2];
        for &b_limb in b {
            let mut carry = 0u64;
            for (t_limb, &a_limb) in t.iter_mut().zip(a) {
                let sum = u64::from(*t_limb) + u64::from(a_limb) * u64::from(b_limb) + carry;
                *t_limb = sum as u32;
                carry = sum >> 32;
            }
            let sum = u64::from(t[len]) + carry;
            t[len] = sum as u32;
            t[len + 1] = (sum >> 32) as u32;

            // Add m·n, with m chosen so the lowest limb becomes zero, and shift down one limb.
            let m = t[0].wrapping_mul(self.n0_inverse);
            let mut carry = (u64::from(t[0]) + u64::from(m) * u64::from(n[0])) >> 32;
            for j in 1..len {
                let sum = u64::from(t[j]) + u64::from(m) * u64::from(n[j]) + carry;
                t[j - 1] = sum as u32;
                carry = sum >> 32;
            }
            let sum = u64::from(t[len]) + carry;
            t[len - 1] = sum as u32;
            t[len] = t[len + 1] + (sum >> 32) as u32;
            t[len + 1] = 0;
        }
        if t[len] != 0 || !less(&t[..len], n) {
            subtract(&mut t[..len], n);
        }
        t.truncate(len);
        t
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

/// Big-endian bytes as 32-bit limbs, least significant first.
fn limbs(bytes: &[u8]) -> Vec<u32> {
    bytes
        .rchunks(4)
        .map(|chunk| {
            chunk
                .iter()
                .fold(0u32, |acc, &byte| (acc << 8) | u32::from(byte))
        })
        .collect()
}

/// The number in `limbs` as `size` big-endian bytes (it fits: it is below the modulus).
fn big_endian(limbs: &[u32], size: usize) -> Vec<u8> {
    let bytes: Vec<u8> = limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
    bytes[bytes.len() - size..].to_vec()
}

/// Whether `a < b`, for numbers of as many limbs.
fn less(a: &[u32], b: &[u32]) -> bool {
    a.len() < b.len() || (a.len() == b.len() && a.iter().rev().lt(b.iter().rev()))
}

/// `a -= b`, modulo `2^(32·limbs)`.
fn subtract(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u64;
    for (a_limb, &b_limb) in a.iter_mut().zip(b) {
        let difference = u64::from(*a_limb)
            .wrapping_sub(u64::from(b_limb))
            .wrapping_sub(borrow);
        *a_limb = difference as u32;
        borrow = difference >> 63;
    }
}

/// `-x⁻¹ mod 2³²` for odd `x`, by Newton's iteration (each step doubles the correct bits; `x`
/// is its own inverse to 3 bits).
fn negated_inverse(x: u32) -> u32 {
    let mut inverse = x;
    for _ in 0..4 {
        inverse = inverse.wrapping_mul(2u32.wrapping_sub(x.wrapping_mul(inverse)));
    }
    inverse.wrapping_neg()
}

/// `R² mod n` for `R = 2^(32·limbs)`: `2^s·R mod n` by doubling, then `k` Montgomery squarings
/// make it `2^(s·2^k)·R`, where `s·2^k = 32·limbs`. About 40 doublings cost one squaring, so
/// `s` is taken between 33 and 64 when it can be (2048 bits: 64 doublings, 5 squarings).
fn r_squared(n: &[u32], n0_inverse: u32, bits: usize) -> Vec<u32> {
    let width = 32 * n.len();
    let (mut s, mut k) = (width, 0);
    while s % 2 == 0 && s > 64 {
        s /= 2;
        k += 1;
    }
    // 2^(bits-1) < n, then doubled up to 2^(width+s) mod n.
    let mut x = vec![0u32; n.len()];
    x[(bits - 1) / 32] = 1 << ((bits - 1) % 32);
    for _ in 0..(width + s - (bits - 1)) {
        let carry = x.iter_mut().fold(0u32, |carry, limb| {
            let out = *limb >> 31;
            *limb = (*limb << 1) | carry;
            out
        });
        if carry != 0 || !less(&x, n) {
            subtract(&mut x, n);
        }
    }
    let key = PublicKey {
        n: n.to_vec(),
        size: 0,
        bits: 0,
        e: 0,
        n0_inverse,
        r_squared: Vec::new(),
    };
    for _ in 0..k {
        x = key.square(&x);
    }
    x
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

    /// Numbers below `n`: 0, 1, n − 1, 2^(bits−1) and pseudo-random ones (xorshift, fixed seed).
    fn below(n: &[u32], count: usize) -> Vec<Vec<u32>> {
        let len = n.len();
        let mut minus_one = n.to_vec();
        minus_one[0] -= 1; // n is odd
        let mut one = vec![0; len];
        one[0] = 1;
        let mut high = vec![0; len];
        let top = n[len - 1];
        high[len - 1] = 1 << (31 - top.leading_zeros());
        let mut numbers = vec![vec![0; len], one, minus_one, high];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u32
        };
        for _ in 0..count {
            let mut x: Vec<u32> = (0..len).map(|_| next()).collect();
            x[len - 1] = next() % top;
            numbers.push(x);
        }
        numbers
    }

    #[test]
    fn a_square_is_the_product_of_a_number_with_itself() {
        // 2048, 3072, 4096 and 2050 bits (a top limb of 2 bits).
        for name in ["a", "b", "c", "odd"] {
            let key = key(name);
            for x in below(&key.n, 50) {
                let square = key.square(&x);
                assert_eq!(square, key.multiply(&x, &x), "key {name}, x = {x:x?}");
                assert!(less(&square, &key.n), "key {name}: the square is reduced");
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
