//! Modular exponentiation for RSA's public-key operation, written for WebAssembly: Montgomery
//! arithmetic over 28-bit limbs, column by column (product scanning).
//!
//! Why 28 bits: a product of two limbs is below 2⁵⁶, so a column of up to 256 of them sums in a
//! `u64` with no carry between terms. Each column is then a dot product of two limb slices, which
//! wasm's SIMD multiplies two lanes at a time (`i64x2.extmul_*_i32x4_u`) where 32-bit limbs
//! would need a carry after every product. One operand of each column runs backwards, so it is
//! kept reversed. The product's columns are summed first; the reduction then finds its
//! multipliers `m` column by column as the low limbs fill (the column order of Koç, Acar and
//! Kaliski's product-scanning methods), adding each product column as it goes.
//!
//! Only public values take part (the key, the token, its signature), so nothing here needs to
//! run in constant time.

/// Bits per limb.
const LIMB_BITS: u32 = 28;
const LIMB_MASK: u64 = (1 << LIMB_BITS) - 1;

/// A modulus ready for Montgomery arithmetic with `R = 2^(28·limbs)`.
#[derive(Debug)]
pub struct Modulus {
    /// The modulus in 28-bit limbs, least significant first.
    n: Vec<u32>,
    /// The same limbs, most significant first: the other half of each reduction column.
    n_reversed: Vec<u32>,
    /// `-n⁻¹ mod 2²⁸`.
    n0_inverse: u32,
    /// `R² mod n`: takes a number into Montgomery form.
    r_squared: Vec<u32>,
}

impl Modulus {
    /// The odd modulus whose big-endian bytes are `n` (no leading zero byte) and which has
    /// `bits` bits.
    pub fn new(n: &[u8], bits: usize) -> Self {
        let len = bits.div_ceil(LIMB_BITS as usize);
        let n = to_limbs(n, len);
        let n_reversed = n.iter().rev().copied().collect();
        let n0_inverse = negated_inverse(n[0]);
        let mut modulus = Self {
            n,
            n_reversed,
            n0_inverse,
            r_squared: Vec::new(),
        };
        modulus.r_squared = modulus.r_squared(bits);
        modulus
    }

    /// `base^e mod n` as `size` big-endian bytes, for big-endian `base < n` and `e ≥ 1`.
    pub fn power(&self, base: &[u8], e: u64, size: usize) -> Vec<u8> {
        let base = to_limbs(base, self.n.len());
        // Square and multiply from the exponent's top bit, in Montgomery form.
        let base = self.multiply(&base, &self.r_squared);
        let mut power = base.clone();
        for bit in (0..63 - e.leading_zeros()).rev() {
            power = self.square(&power);
            if e >> bit & 1 == 1 {
                power = self.multiply(&power, &base);
            }
        }
        to_bytes(&self.out_of_montgomery_form(&power), size)
    }

    /// `a·R⁻¹ mod n`, the Montgomery product with 1: out of Montgomery form. The product's
    /// columns are `a`'s limbs, so only the reduction is left.
    fn out_of_montgomery_form(&self, a: &[u32]) -> Vec<u32> {
        let mut columns = vec![0; 2 * a.len() - 1];
        for (column, &limb) in columns.iter_mut().zip(a) {
            *column = u64::from(limb);
        }
        self.reduce(&columns)
    }

    /// Montgomery product `a·b·R⁻¹ mod n` of `a, b < n`.
    fn multiply(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let len = a.len();
        let b_reversed: Vec<u32> = b.iter().rev().copied().collect();
        let mut columns = Vec::with_capacity(2 * len - 1);
        for k in 0..2 * len - 1 {
            let (low, high) = column_range(k, len);
            columns.push(dot(
                &a[low..high],
                &b_reversed[len - 1 + low - k..len - 1 + high - k],
            ));
        }
        self.reduce(&columns)
    }

    /// Montgomery square `a²·R⁻¹ mod n` of `a < n`: each product of two different limbs is
    /// computed once and doubled, where [`Modulus::multiply`] computes both. All but one of a
    /// verification's Montgomery operations are squares (e = 65537: 16 of 17).
    fn square(&self, a: &[u32]) -> Vec<u32> {
        let len = a.len();
        let a_reversed: Vec<u32> = a.iter().rev().copied().collect();
        let mut columns = Vec::with_capacity(2 * len - 1);
        for k in 0..2 * len - 1 {
            // The pairs i < j with i + j = k; then the square of the middle limb.
            let (low, _) = column_range(k, len);
            let middle = k.div_ceil(2);
            let cross = dot(
                &a[low..middle],
                &a_reversed[len - 1 + low - k..len - 1 + middle - k],
            );
            let square = if k % 2 == 0 {
                u64::from(a[k / 2]) * u64::from(a[k / 2])
            } else {
                0
            };
            columns.push(2 * cross + square);
        }
        self.reduce(&columns)
    }

    /// `(t + m·n) / R`, reduced below `n`, where `columns[k]` is the sum of the limb products
    /// `t` has in column `k` and `m` is chosen limb by limb so that the low `len` columns
    /// become zero.
    fn reduce(&self, columns: &[u64]) -> Vec<u32> {
        let len = self.n.len();
        let mut m = vec![0u32; len];
        let mut result = vec![0u32; len];
        // Below 2^37: a column's sum is below 2·256·2^56 = 2^65.
        let mut carry = 0u64;
        for (k, &column) in columns.iter().enumerate() {
            let (low, _) = column_range(k, len);
            // m[k] is not known yet in its own column: its product with n[0] comes after.
            let m_high = k.min(len);
            let reduction = dot(
                &m[low..m_high],
                &self.n_reversed[len - 1 + low - k..len - 1 + m_high - k],
            );
            // The three terms can pass 2^64 together: their low and high parts are summed
            // apart (wasm has no 128-bit arithmetic; u128 would call a helper per column).
            let mut low_sum = (carry & LIMB_MASK) + (column & LIMB_MASK) + (reduction & LIMB_MASK);
            let high_sum = (carry >> LIMB_BITS) + (column >> LIMB_BITS) + (reduction >> LIMB_BITS);
            if k < len {
                let m_k = (low_sum as u32).wrapping_mul(self.n0_inverse) & LIMB_MASK as u32;
                m[k] = m_k;
                low_sum += u64::from(m_k) * u64::from(self.n[0]);
                debug_assert_eq!(low_sum & LIMB_MASK, 0);
            } else {
                result[k - len] = (low_sum & LIMB_MASK) as u32;
            }
            carry = high_sum + (low_sum >> LIMB_BITS);
        }
        // The result is below 2n < 2^(28·len + 1): what is left fits the top limb and a bit.
        debug_assert!(carry < 1 << (LIMB_BITS + 1));
        result[len - 1] = carry as u32;
        if !less(&result, &self.n) {
            subtract(&mut result, &self.n);
        }
        result
    }

    /// `R² mod n`: `2^s·R mod n` by doubling from `2^(bits−1) < n`, then `k` Montgomery squarings
    /// make it `2^(s·2^k)·R`, then `d` more doublings `2^(s·2^k + d)·R` with `s·2^k + d` =
    /// `28·limbs`. About 40 doublings cost one squaring, so `s` is taken between 33 and 64
    /// (2048 bits: 89 doublings, 5 squarings, 24 doublings).
    fn r_squared(&self, bits: usize) -> Vec<u32> {
        let width = LIMB_BITS as usize * self.n.len();
        let mut k = 0;
        while width >> (k + 1) > 32 {
            k += 1;
        }
        let s = width >> k;
        let d = width - (s << k);
        let mut x = vec![0u32; self.n.len()];
        x[(bits - 1) / LIMB_BITS as usize] = 1 << ((bits - 1) % LIMB_BITS as usize);
        for _ in 0..width + s - (bits - 1) {
            self.double(&mut x);
        }
        for _ in 0..k {
            x = self.square(&x);
        }
        for _ in 0..d {
            self.double(&mut x);
        }
        x
    }

    /// `x = 2x mod n`, for `x < n`.
    fn double(&self, x: &mut [u32]) {
        let mut carry = 0;
        for limb in x.iter_mut() {
            let doubled = (*limb << 1) | carry;
            carry = doubled >> LIMB_BITS;
            *limb = doubled & LIMB_MASK as u32;
        }
        // A carry out of the top limb is 2^(28·len) > n: subtracting n wraps it away.
        if carry != 0 || !less(x, &self.n) {
            subtract(x, &self.n);
        }
    }
}

/// The limb indices `low..high` of a product's first factor that have a partner in column `k`
/// (their indices sum to `k`), for factors of `len` limbs.
fn column_range(k: usize, len: usize) -> (usize, usize) {
    ((k + 1).saturating_sub(len), k.min(len - 1) + 1)
}

/// `Σ a[i]·b[i]` for limbs below 2²⁸ and at most 256 of them: it cannot overflow.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn dot(a: &[u32], b: &[u32]) -> u64 {
    debug_assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| u64::from(x) * u64::from(y))
        .sum()
}

/// `Σ a[i]·b[i]` for limbs below 2²⁸ and at most 256 of them, four products per step in wasm's
/// SIMD, which `.cargo/config.toml` enables for wasm builds.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline]
#[allow(unsafe_code)]
fn dot(a: &[u32], b: &[u32]) -> u64 {
    use core::arch::wasm32::{
        u64x2_add, u64x2_extmul_high_u32x4, u64x2_extmul_low_u32x4, u64x2_extract_lane,
        u64x2_splat, v128_load,
    };
    debug_assert_eq!(a.len(), b.len());
    let len = a.len().min(b.len());
    let mut sums = u64x2_splat(0);
    let mut i = 0;
    while i + 4 <= len {
        // SAFETY: both slices hold the 16 bytes from element i (i + 4 ≤ len), and `v128_load`
        // reads them unaligned. Safe Rust has no 128-bit load; building the vector lane by lane
        // costs more than the products.
        let (x, y) = unsafe {
            (
                v128_load(a.as_ptr().add(i).cast()),
                v128_load(b.as_ptr().add(i).cast()),
            )
        };
        sums = u64x2_add(sums, u64x2_extmul_low_u32x4(x, y));
        sums = u64x2_add(sums, u64x2_extmul_high_u32x4(x, y));
        i += 4;
    }
    let mut sum = u64x2_extract_lane::<0>(sums) + u64x2_extract_lane::<1>(sums);
    while i < len {
        sum += u64::from(a[i]) * u64::from(b[i]);
        i += 1;
    }
    sum
}

/// Big-endian bytes as `len` 28-bit limbs, least significant first (the number fits).
fn to_limbs(bytes: &[u8], len: usize) -> Vec<u32> {
    let mut limbs = Vec::with_capacity(len + 1);
    let (mut pending, mut pending_bits) = (0u64, 0);
    for &byte in bytes.iter().rev() {
        pending |= u64::from(byte) << pending_bits;
        pending_bits += 8;
        if pending_bits >= LIMB_BITS {
            limbs.push((pending & LIMB_MASK) as u32);
            pending >>= LIMB_BITS;
            pending_bits -= LIMB_BITS;
        }
    }
    limbs.push(pending as u32);
    debug_assert!(limbs[len.min(limbs.len())..].iter().all(|&l| l == 0));
    limbs.resize(len, 0);
    limbs
}

/// The number in 28-bit `limbs` as `size` big-endian bytes (it fits: it is below the modulus).
fn to_bytes(limbs: &[u32], size: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size + 4);
    let (mut pending, mut pending_bits) = (0u64, 0);
    for &limb in limbs {
        pending |= u64::from(limb) << pending_bits;
        pending_bits += LIMB_BITS;
        while pending_bits >= 8 {
            bytes.push(pending as u8);
            pending >>= 8;
            pending_bits -= 8;
        }
    }
    bytes.push(pending as u8);
    debug_assert!(bytes[size.min(bytes.len())..].iter().all(|&b| b == 0));
    bytes.resize(size, 0);
    bytes.reverse();
    bytes
}

/// Whether `a < b`, for numbers of as many limbs.
fn less(a: &[u32], b: &[u32]) -> bool {
    a.iter().rev().lt(b.iter().rev())
}

/// `a -= b` for `a ≥ b` (as numbers; `a`'s top limb may hold more than 28 bits).
fn subtract(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0;
    for (a_limb, &b_limb) in a.iter_mut().zip(b) {
        let difference = a_limb.wrapping_sub(b_limb).wrapping_sub(borrow);
        borrow = difference >> 31;
        *a_limb = difference & LIMB_MASK as u32;
    }
}

/// `-x⁻¹ mod 2²⁸` for odd `x`, by Newton's iteration (each step doubles the correct bits; `x`
/// is its own inverse to 3 bits).
fn negated_inverse(x: u32) -> u32 {
    let mut inverse = x;
    for _ in 0..4 {
        inverse = inverse.wrapping_mul(2u32.wrapping_sub(x.wrapping_mul(inverse)));
    }
    inverse.wrapping_neg() & LIMB_MASK as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Odd moduli of the accepted sizes, pseudo-random (xorshift, fixed seed), with the top bit
    /// set: 2048, 2050 (a top limb of 6 bits), 2072 (a whole number of limbs), 3072 and 4096 bits.
    fn moduli() -> Vec<(Vec<u8>, usize)> {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        [2048, 2050, 2072, 3072, 4096]
            .into_iter()
            .map(|bits: usize| {
                let mut n: Vec<u8> = (0..bits.div_ceil(8)).map(|_| next() as u8).collect();
                let top_bits = bits - 8 * (n.len() - 1);
                n[0] = (n[0] | 0x80) >> (8 - top_bits);
                let last = n.len() - 1;
                n[last] |= 1;
                (n, bits)
            })
            .collect()
    }

    fn xorshift(mut state: u64) -> impl FnMut() -> u32 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u32
        }
    }

    /// Numbers below `n`: 0, 1, n − 1, 2^(bits−1) and pseudo-random ones.
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
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..count {
            let mut x: Vec<u32> = (0..len).map(|_| next() & LIMB_MASK as u32).collect();
            x[len - 1] = next() % top;
            numbers.push(x);
        }
        numbers
    }

    /// 1 in the modulus's limbs.
    fn one(modulus: &Modulus) -> Vec<u32> {
        let mut one = vec![0; modulus.n.len()];
        one[0] = 1;
        one
    }

    #[test]
    fn a_square_is_the_product_of_a_number_with_itself() {
        for (n, bits) in moduli() {
            let modulus = Modulus::new(&n, bits);
            for x in below(&modulus.n, 30) {
                let square = modulus.square(&x);
                assert_eq!(square, modulus.multiply(&x, &x), "{bits} bits, x = {x:x?}");
                assert!(
                    less(&square, &modulus.n),
                    "{bits} bits: the square is reduced"
                );
            }
        }
    }

    #[test]
    fn r_squared_takes_numbers_into_montgomery_form_and_back() {
        // x·R²·R⁻¹ = x·R, and x·R·1·R⁻¹ = x: both directions agree only if R² mod n is right.
        for (n, bits) in moduli() {
            let modulus = Modulus::new(&n, bits);
            let one = one(&modulus);
            for x in below(&modulus.n, 10) {
                let montgomery = modulus.multiply(&x, &modulus.r_squared);
                assert_eq!(modulus.multiply(&montgomery, &one), x, "{bits} bits");
            }
            // R mod n, from R²: the Montgomery form of 1, whose square is itself.
            let r = modulus.multiply(&one, &modulus.r_squared);
            assert_eq!(modulus.square(&r), r, "{bits} bits");
        }
    }

    #[test]
    fn leaving_montgomery_form_is_the_product_with_one() {
        for (n, bits) in moduli() {
            let modulus = Modulus::new(&n, bits);
            let one = one(&modulus);
            for x in below(&modulus.n, 10) {
                assert_eq!(
                    modulus.out_of_montgomery_form(&x),
                    modulus.multiply(&x, &one),
                    "{bits} bits"
                );
            }
        }
    }

    #[test]
    fn small_powers_match_repeated_products() {
        // x³ mod n by `power` against x·x·x by `multiply` in Montgomery form.
        for (n, bits) in moduli() {
            let modulus = Modulus::new(&n, bits);
            let size = n.len();
            for x in below(&modulus.n, 5) {
                let bytes = to_bytes(&x, size);
                let m = modulus.multiply(&x, &modulus.r_squared);
                let cube = modulus.multiply(&modulus.square(&m), &m);
                let one = one(&modulus);
                let expected = to_bytes(&modulus.multiply(&cube, &one), size);
                assert_eq!(modulus.power(&bytes, 3, size), expected, "{bits} bits");
                assert_eq!(modulus.power(&bytes, 1, size), bytes, "{bits} bits");
            }
        }
    }

    #[test]
    fn limbs_and_bytes_convert_both_ways() {
        for (n, bits) in moduli() {
            let len = bits.div_ceil(LIMB_BITS as usize);
            let limbs = to_limbs(&n, len);
            assert!(limbs.iter().all(|&l| u64::from(l) <= LIMB_MASK));
            assert_ne!(limbs[len - 1], 0, "{bits} bits: the top limb is the top");
            assert_eq!(to_bytes(&limbs, n.len()), n, "{bits} bits");
        }
        assert_eq!(to_limbs(&[0x1f, 0xff, 0xff, 0xff], 2), [0x0fff_ffff, 1]);
        assert_eq!(to_bytes(&[0x0fff_ffff, 1], 4), [0x1f, 0xff, 0xff, 0xff]);
    }
}
