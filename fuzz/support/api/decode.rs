//! Decoding fuzz input: sizes, parameters, float data with special values, kernels and levels.

#[allow(unused_imports)]
use super::*;

/// True one time in `n`; false on an exhausted input (which reads as zeros,
/// where `Unstructured::ratio` would say true).
pub(crate) fn one_in(u: &mut Unstructured, n: u8) -> Result<bool> {
    Ok(u.int_in_range(0..=n - 1)? == n - 1)
}

/// A count or a stride: usually small, sometimes absurd.
pub(crate) fn size(u: &mut Unstructured, small: usize) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=15)? {
        0 => 0,
        1 => 1,
        2..=9 => u.int_in_range(0..=small)?,
        10 => usize::MAX - u.int_in_range(0..=3)?,
        11 => 1usize << u.int_in_range(0..=63)?,
        12 => (1usize << u.int_in_range(0..=63)?).wrapping_sub(u.int_in_range(0..=2)?),
        13 => usize::MAX / u.int_in_range(2..=9)?,
        14 => u.arbitrary()?,
        _ => (1usize << 32) + u.int_in_range(0..=small)?,
    })
}

pub(crate) const SPECIALS: [f32; 22] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    1e-45,
    -1e-45,
    1e30,
    -1e30,
    BIG as f32,
    -(BIG as f32),
    1.0 / BIG as f32,
    3e38,
    1.7e38,
    1e-3,
    100.0,
];

/// A scorer parameter: valid, boundary or invalid.
pub(crate) fn param(u: &mut Unstructured) -> Result<f32> {
    Ok(match u.int_in_range(0u8..=7)? {
        0..=2 => *u.choose(&[1.0, 0.5, 2.0, 1e-3, 0.125, 4.0, 3.0, 1.5, 10.0])?,
        3 | 4 => *u.choose(&SPECIALS)?,
        5 => (u.int_in_range(-150i32..=128)? as f32).exp2(),
        6 => f32::from_bits(u.int_in_range(1u32..=8)?), // subnormals, 2^-149 first
        _ => f32::from_bits(u.arbitrary()?),
    })
}

/// A small deterministic generator for bulk data.
pub(crate) struct Gen(pub(crate) u64);
impl Gen {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// `len` floats: moderate grid values, wider finite ones, or anything; then
/// up to 8 special values at fuzz-chosen places.
pub(crate) fn floats(u: &mut Unstructured, len: usize) -> Result<Vec<f32>> {
    let mut g = Gen(u.arbitrary::<u32>()? as u64);
    // Moderate data most of the time, so that the tiers below are reached.
    let regime = u.int_in_range(0u8..=7)?;
    let mut v: Vec<f32> = (0..len)
        .map(|_| {
            let r = g.next();
            let moderate = ((r % 2049) as f32 - 1024.0) / ((r >> 12) % 8 + 1) as f32;
            match regime {
                0..=3 => moderate,
                4 => 0.0,
                5 => moderate * ((((r >> 16) % 81) as i32 - 40) as f32).exp2(),
                6 => {
                    if (r >> 20) % 4 == 0 {
                        f32::from_bits((r ^ (r << 17)) as u32)
                    } else {
                        moderate
                    }
                }
                _ => SPECIALS[(r % SPECIALS.len() as u64) as usize],
            }
        })
        .collect();
    if len > 0 && one_in(u, 3)? {
        for _ in 0..u.int_in_range(1u8..=8)? {
            let i = u.int_in_range(0..=len - 1)?;
            v[i] = *u.choose(&SPECIALS)?;
        }
    }
    Ok(v)
}

/// A kernel and a level cap: any [`Level`], supported on this CPU or not
/// (an unsupported cap selects the best supported level below it).
pub(crate) fn kernel(u: &mut Unstructured) -> Result<(Kernel, Level)> {
    Ok((*u.choose(&[Kernel::Tiled, Kernel::Scalar])?, *u.choose(&Level::ALL)?))
}
