//! Variable-time multiplication of a fixed point by a scalar, from a table of its multiples.
//!
//! Verifying a signature computes `[S]B + [k](−A)`: B is the same for every signature and A the
//! same for every signature of one key, while S and k change. A variable-base multiplication
//! spends most of its time in about 250 doublings; with the multiples `j · 2^(w·i) · P` at hand,
//! `[s]P` is one addition per w-bit digit of s and (for a table that keeps every `passes`-th row
//! only) `w · (passes − 1)` doublings. Everything involved in a verification is public, so the
//! look-ups index the table directly instead of scanning it in constant time as
//! curve25519-dalek's own (secret-scalar) tables must.
//!
//! Only curve25519-dalek's group operations are used (`+`, `−`, identity); the result is the
//! group element `[s]P` itself, so whatever is computed from it (its encoding) is exactly what
//! any other way of computing `[s]P` gives. Tests compare it with curve25519-dalek's
//! multiplication on random and extreme scalars.

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity as _;

/// Multiples of one point, for [`FixedBase::mul`].
pub struct FixedBase {
    /// Bits per digit.
    window: usize,
    /// Digits per row: row `i` serves digits `passes·i .. passes·i + passes`.
    passes: usize,
    /// `rows[i][j − 1] = j · 2^(window·passes·i) · P` for `j` in `1 ..= 2^(window − 1)`.
    rows: Vec<Vec<EdwardsPoint>>,
}

impl FixedBase {
    /// The table a signer's key gets (of −A, for signature checks): digits of 5 bits, every
    /// third row kept, 18 rows of 16 points (45 KiB), 10 doublings per multiplication. With
    /// many keys' tables in use, the look-ups' cache misses weigh as much as the additions:
    /// among the shapes tried (4 to 5 bits, every row to every fourth), this was fastest from
    /// 1 to 64 keys in turn.
    pub fn for_key(minus_a: &EdwardsPoint) -> Self {
        Self::new(minus_a, 5, 3)
    }

    /// The table of the base point B: digits of 8 bits, 33 rows of 128 points (660 KiB), no
    /// doublings.
    pub fn for_basepoint() -> Self {
        Self::new(&curve25519_dalek::constants::ED25519_BASEPOINT_POINT, 8, 1)
    }

    /// The table of `point` for digits of `window` bits, keeping every `passes`-th row: its
    /// size is `⌈(⌈256 / window⌉ + 1) / passes⌉ · 2^(window − 1)` points of 160 bytes.
    pub fn new(point: &EdwardsPoint, window: usize, passes: usize) -> Self {
        assert!((2..=8).contains(&window) && passes >= 1);
        let half = 1usize << (window - 1);
        let row_count = digit_count(window).div_ceil(passes);
        let mut rows = Vec::with_capacity(row_count);
        let mut base = *point;
        for _ in 0..row_count {
            let mut row = Vec::with_capacity(half);
            row.push(base);
            for j in 1..half {
                let next = row[j - 1] + base;
                row.push(next);
            }
            // 2^window · base, then doubled up to the next kept row.
            let mut next_base = row[half - 1] + row[half - 1];
            for _ in 0..window * (passes - 1) {
                next_base = next_base + next_base;
            }
            rows.push(row);
            base = next_base;
        }
        Self {
            window,
            passes,
            rows,
        }
    }

    /// `[scalar]P`, in time that depends on the scalar: for public scalars only.
    pub fn mul(&self, scalar: &Scalar) -> EdwardsPoint {
        let mut buffer = [0; MOST_DIGITS];
        let digits = signed_digits(scalar, self.window, &mut buffer);
        let mut sum = EdwardsPoint::identity();
        for pass in (0..self.passes).rev() {
            for (row, multiples) in self.rows.iter().enumerate() {
                let Some(&digit) = digits.get(row * self.passes + pass) else {
                    break;
                };
                match digit {
                    0 => {}
                    d if d > 0 => sum += &multiples[(d - 1) as usize],
                    d => sum -= &multiples[(-d - 1) as usize],
                }
            }
            if pass > 0 {
                for _ in 0..self.window {
                    sum = sum + sum;
                }
            }
        }
        sum
    }

    /// The table's size in bytes (its points).
    pub fn bytes(&self) -> usize {
        self.rows.iter().map(Vec::len).sum::<usize>() * std::mem::size_of::<EdwardsPoint>()
    }
}

/// Digits of a 256-bit number in radix `2^window`, least significant first: one more than the
/// unsigned digits need, for the last carry.
fn digit_count(window: usize) -> usize {
    256usize.div_ceil(window) + 1
}

/// The most digits a scalar has, with the narrowest window (2 bits).
const MOST_DIGITS: usize = 129;

/// The scalar's digits `d_j` in radix `2^window` with `−2^(window−1) < d_j ≤ 2^(window−1)`
/// and `Σ d_j · 2^(window·j)` equal to the scalar's 256-bit value, written into `buffer`
/// (a verification computes two: no allocation for them).
fn signed_digits<'a>(
    scalar: &Scalar,
    window: usize,
    buffer: &'a mut [i32; MOST_DIGITS],
) -> &'a [i32] {
    let bytes = scalar.as_bytes();
    let bit = |i: usize| -> i32 {
        if i >= 256 {
            0
        } else {
            i32::from((bytes[i / 8] >> (i % 8)) & 1)
        }
    };
    let digits = &mut buffer[..digit_count(window)];
    for (j, digit) in digits.iter_mut().enumerate() {
        *digit = (0..window).map(|t| bit(j * window + t) << t).sum();
    }
    let half = 1 << (window - 1);
    for j in 0..digits.len() - 1 {
        if digits[j] > half {
            digits[j] -= 1 << window;
            digits[j + 1] += 1;
        }
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use rand::{Rng, SeedableRng};

    /// Scalars whose digits hit every edge: zero, one, all ones, each half-way digit, ℓ − 1.
    fn extreme_scalars() -> Vec<Scalar> {
        let mut scalars = vec![
            Scalar::ZERO,
            Scalar::ONE,
            -Scalar::ONE, // ℓ − 1
            Scalar::from(u64::MAX),
            Scalar::from(8u64),
            Scalar::from(0x88u64),
            Scalar::from(0x80u64),
        ];
        for byte in [0x08u8, 0x80, 0x88, 0xff, 0x7f, 0x10] {
            let mut bytes = [byte; 32];
            bytes[31] &= 0x0f; // below 2^252 < ℓ
            scalars.push(Scalar::from_canonical_bytes(bytes).unwrap());
        }
        scalars
    }

    #[test]
    fn signed_digits_add_up_to_the_scalar() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for window in 2..=8 {
            let half = 1 << (window - 1);
            let mut scalars = extreme_scalars();
            scalars.extend((0..50).map(|_| Scalar::from_bytes_mod_order(rng.gen())));
            for scalar in scalars {
                let mut buffer = [0; MOST_DIGITS];
                let digits = signed_digits(&scalar, window, &mut buffer);
                assert!(digits.iter().all(|&d| -half < d && d <= half));
                let mut sum = Scalar::ZERO;
                let radix = Scalar::from(1u64 << window);
                for &d in digits.iter().rev() {
                    sum = sum * radix
                        + if d >= 0 {
                            Scalar::from(d as u64)
                        } else {
                            -Scalar::from((-d) as u64)
                        };
                }
                assert_eq!(sum, scalar, "window {window}");
            }
        }
    }

    #[test]
    fn multiplies_as_curve25519_dalek_does() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let point = ED25519_BASEPOINT_POINT * Scalar::from_bytes_mod_order(rng.gen());
        for (window, passes) in [(5, 3), (8, 1), (4, 2), (3, 1)] {
            let table = FixedBase::new(&point, window, passes);
            let mut scalars = extreme_scalars();
            scalars.extend((0..40).map(|_| Scalar::from_bytes_mod_order(rng.gen())));
            for scalar in scalars {
                assert_eq!(
                    table.mul(&scalar).compress(),
                    (point * scalar).compress(),
                    "window {window}, passes {passes}"
                );
            }
        }
    }

    #[test]
    fn table_sizes() {
        assert_eq!(digit_count(2), MOST_DIGITS);
        let b = ED25519_BASEPOINT_POINT;
        assert_eq!(FixedBase::for_key(&b).bytes(), 18 * 16 * 160);
        assert_eq!(FixedBase::for_basepoint().bytes(), 33 * 128 * 160);
    }
}
