//! Status codes, and the messages written into `sa_error`.

use crate::types::sa_error;
use core::ffi::c_char;
use core::fmt::{self, Write};
use streamattn::Error;

/// Success.
pub const SA_OK: i32 = 0;
/// A head dimension (or block size) is 0.
pub const SA_ERR_ZERO_DIM: i32 = 1;
/// A buffer is shorter than its shape and strides need.
pub const SA_ERR_BUFFER_TOO_SHORT: i32 = 2;
/// A stride would make rows or heads overlap.
pub const SA_ERR_STRIDE_TOO_SMALL: i32 = 3;
/// Shape times stride overflows `size_t`.
pub const SA_ERR_OVERFLOW: i32 = 4;
/// Two dimensions that must agree do not.
pub const SA_ERR_SHAPE_MISMATCH: i32 = 5;
/// The query heads are not a positive multiple of the key/value heads.
pub const SA_ERR_HEAD_GROUPING: i32 = 6;
/// A parameter (scale, eps, p, softcap, weights, slopes, sinks) is out of its domain.
pub const SA_ERR_INVALID_PARAMETER: i32 = 7;
/// A block table entry names a block outside the pool.
pub const SA_ERR_BLOCK_OUT_OF_POOL: i32 = 8;
/// `cu_seqlens` decreases.
pub const SA_ERR_DECREASING: i32 = 9;
/// An argument this entry cannot apply (e.g. a bias in a batch).
pub const SA_ERR_UNSUPPORTED: i32 = 10;
/// A count is out of range (e.g. more new rows than keys).
pub const SA_ERR_OUT_OF_RANGE: i32 = 11;
/// A required pointer is `NULL`, or a `NULL` pointer comes with a nonzero length.
pub const SA_ERR_NULL_POINTER: i32 = 12;
/// A pointer is not aligned for its element type.
pub const SA_ERR_MISALIGNED: i32 = 13;
/// An enumeration field (`dtype`, `scorer`, `mask`, `kernel`, `max_level`) has no such value.
pub const SA_ERR_UNKNOWN_VALUE: i32 = 14;
/// An output overlaps an input or another output.
pub const SA_ERR_OVERLAP: i32 = 15;
/// Element types that must agree do not (keys and values), or an input that
/// must be `SA_F32` is not (queries, cached norms).
pub const SA_ERR_DTYPE: i32 = 16;
/// An error this version of the header has no code for.
pub const SA_ERR_OTHER: i32 = 99;

/// A failed call: the code and what the message says.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fail {
    /// An error of the crate's checks.
    Crate(Error),
    /// An error of the C arguments: the code and the argument.
    Abi(i32, &'static str),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Crate(e)
    }
}

impl Fail {
    pub(crate) fn code(self) -> i32 {
        match self {
            Fail::Abi(code, _) => code,
            Fail::Crate(e) => match e {
                Error::ZeroDim { .. } => SA_ERR_ZERO_DIM,
                Error::BufferTooShort { .. } => SA_ERR_BUFFER_TOO_SHORT,
                Error::StrideTooSmall { .. } => SA_ERR_STRIDE_TOO_SMALL,
                Error::Overflow { .. } => SA_ERR_OVERFLOW,
                Error::ShapeMismatch { .. } => SA_ERR_SHAPE_MISMATCH,
                Error::HeadGrouping { .. } => SA_ERR_HEAD_GROUPING,
                Error::InvalidParameter { .. } => SA_ERR_INVALID_PARAMETER,
                Error::BlockOutOfPool { .. } => SA_ERR_BLOCK_OUT_OF_POOL,
                Error::Decreasing { .. } => SA_ERR_DECREASING,
                Error::Unsupported { .. } => SA_ERR_UNSUPPORTED,
                Error::OutOfRange { .. } => SA_ERR_OUT_OF_RANGE,
                _ => SA_ERR_OTHER,
            },
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Crate(e) => e.fmt(f),
            Fail::Abi(code, what) => {
                let why = match *code {
                    SA_ERR_NULL_POINTER => "is NULL, with a nonzero length or where a struct is required",
                    SA_ERR_MISALIGNED => "is not aligned for its element type",
                    SA_ERR_OVERFLOW => "has a length whose bytes overflow",
                    SA_ERR_UNKNOWN_VALUE => "has no such value",
                    SA_ERR_OVERLAP => "overlaps an input or another output",
                    SA_ERR_DTYPE => "has the wrong element type (queries, outputs and norms are SA_F32; keys and values share one)",
                    SA_ERR_OUT_OF_RANGE => "is out of range",
                    _ => "is wrong",
                };
                write!(f, "{what}: {why}")
            }
        }
    }
}

/// The short name of a code (`"SA_ERR_SHAPE_MISMATCH"`), NUL-terminated.
pub(crate) fn name(code: i32) -> &'static [u8] {
    match code {
        SA_OK => b"SA_OK\0",
        SA_ERR_ZERO_DIM => b"SA_ERR_ZERO_DIM\0",
        SA_ERR_BUFFER_TOO_SHORT => b"SA_ERR_BUFFER_TOO_SHORT\0",
        SA_ERR_STRIDE_TOO_SMALL => b"SA_ERR_STRIDE_TOO_SMALL\0",
        SA_ERR_OVERFLOW => b"SA_ERR_OVERFLOW\0",
        SA_ERR_SHAPE_MISMATCH => b"SA_ERR_SHAPE_MISMATCH\0",
        SA_ERR_HEAD_GROUPING => b"SA_ERR_HEAD_GROUPING\0",
        SA_ERR_INVALID_PARAMETER => b"SA_ERR_INVALID_PARAMETER\0",
        SA_ERR_BLOCK_OUT_OF_POOL => b"SA_ERR_BLOCK_OUT_OF_POOL\0",
        SA_ERR_DECREASING => b"SA_ERR_DECREASING\0",
        SA_ERR_UNSUPPORTED => b"SA_ERR_UNSUPPORTED\0",
        SA_ERR_OUT_OF_RANGE => b"SA_ERR_OUT_OF_RANGE\0",
        SA_ERR_NULL_POINTER => b"SA_ERR_NULL_POINTER\0",
        SA_ERR_MISALIGNED => b"SA_ERR_MISALIGNED\0",
        SA_ERR_UNKNOWN_VALUE => b"SA_ERR_UNKNOWN_VALUE\0",
        SA_ERR_OVERLAP => b"SA_ERR_OVERLAP\0",
        SA_ERR_DTYPE => b"SA_ERR_DTYPE\0",
        SA_ERR_OTHER => b"SA_ERR_OTHER\0",
        _ => b"(not a streamattn status code)\0",
    }
}

/// Writes UTF-8 into a `char` buffer, cutting at a character boundary and
/// keeping the last byte for the NUL.
struct Cursor<'a> {
    buf: &'a mut [c_char],
    at: usize,
}

impl Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len().saturating_sub(1) - self.at;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        for (d, &b) in self.buf[self.at..].iter_mut().zip(&s.as_bytes()[..n]) {
            *d = b as c_char;
        }
        self.at += n;
        if n < s.len() {
            Err(fmt::Error) // full: stop formatting
        } else {
            Ok(())
        }
    }
}

/// Fills `e` with the code and message of `outcome`.
pub(crate) fn report(e: &mut sa_error, outcome: Result<(), Fail>) -> i32 {
    let mut cursor = Cursor { buf: &mut e.message, at: 0 };
    let code = match outcome {
        Ok(()) => {
            let _ = cursor.write_str("ok");
            SA_OK
        }
        Err(fail) => {
            // A message cut short at the buffer's end is still what it says.
            let _ = write!(cursor, "{fail}");
            fail.code()
        }
    };
    let at = cursor.at;
    e.message[at] = 0;
    e.code = code;
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: &sa_error) -> std::string::String {
        let bytes: std::vec::Vec<u8> = e.message.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
        std::string::String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn messages_are_the_crates_and_cut_at_the_buffer_with_a_nul() {
        let mut e = sa_error { code: -1, message: [1; 256] };
        let fail = Fail::Crate(Error::ShapeMismatch { what: "v", expected: 3, found: 4 });
        assert_eq!(report(&mut e, Err(fail)), SA_ERR_SHAPE_MISMATCH);
        assert_eq!(e.code, SA_ERR_SHAPE_MISMATCH);
        assert_eq!(message(&e), "v: dimension 4 does not match the expected 3");
        let long: &'static str = std::boxed::Box::leak("é".repeat(300).into_boxed_str());
        report(&mut e, Err(Fail::Abi(SA_ERR_NULL_POINTER, long)));
        let m = message(&e);
        assert_eq!(m.len(), 254, "255 bytes of room, cut at a character boundary");
        assert!(m.chars().all(|c| c == 'é'));
        assert_eq!(report(&mut e, Ok(())), SA_OK);
        assert_eq!(message(&e), "ok");
    }

    #[test]
    fn every_code_has_a_name_that_spells_it() {
        for code in [
            SA_OK,
            SA_ERR_ZERO_DIM,
            SA_ERR_BUFFER_TOO_SHORT,
            SA_ERR_STRIDE_TOO_SMALL,
            SA_ERR_OVERFLOW,
            SA_ERR_SHAPE_MISMATCH,
            SA_ERR_HEAD_GROUPING,
            SA_ERR_INVALID_PARAMETER,
            SA_ERR_BLOCK_OUT_OF_POOL,
            SA_ERR_DECREASING,
            SA_ERR_UNSUPPORTED,
            SA_ERR_OUT_OF_RANGE,
            SA_ERR_NULL_POINTER,
            SA_ERR_MISALIGNED,
            SA_ERR_UNKNOWN_VALUE,
            SA_ERR_OVERLAP,
            SA_ERR_DTYPE,
            SA_ERR_OTHER,
        ] {
            let n = name(code);
            assert!(n.starts_with(b"SA_") && n.ends_with(b"\0"), "{code}");
        }
        assert!(!name(-7).starts_with(b"SA_"));
    }
}
