//! One gRPC message in its frame: a compression flag, a 4-byte big-endian length, the message.
//! The proxy's unary call frames what it sends and reads what it gets back; the gateway reads a
//! gRPC body a caller sends and frames the answer. Each door says in its own words what was
//! wrong with a frame; what a frame is, is said here once.

use bytes::{BufMut, Bytes, BytesMut};

/// The flag and the length before a message.
const PREFIX: usize = 5;

/// What is wrong with a body that should hold exactly one uncompressed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unframed {
    /// Fewer bytes than the prefix.
    Short,
    /// The compression flag is set (1) or is not a flag at all (anything else).
    Flag(u8),
    /// The length in the prefix is not the length of what follows.
    Length,
}

/// `message` in one uncompressed frame; `None` when it is longer than a frame can say.
pub(crate) fn frame(message: &[u8]) -> Option<Bytes> {
    let length = u32::try_from(message.len()).ok()?;
    let mut frame = BytesMut::with_capacity(PREFIX + message.len());
    frame.put_u8(0);
    frame.put_u32(length);
    frame.put_slice(message);
    Some(frame.freeze())
}

/// The message of `body`, which must be exactly one uncompressed frame.
pub(crate) fn unframe(mut body: Bytes) -> Result<Bytes, Unframed> {
    if body.len() < PREFIX {
        return Err(Unframed::Short);
    }
    if body[0] != 0 {
        return Err(Unframed::Flag(body[0]));
    }
    let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if body.len() - PREFIX != length {
        return Err(Unframed::Length);
    }
    Ok(body.split_off(PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_holds_one_message_and_nothing_else() {
        let framed = frame(&[8, 1]).unwrap();
        assert_eq!(&framed[..], &[0, 0, 0, 0, 2, 8, 1]);
        assert_eq!(unframe(framed).unwrap(), Bytes::from_static(&[8, 1]));
        assert_eq!(unframe(frame(&[]).unwrap()).unwrap(), Bytes::new());
        for (bad, why) in [
            (&[][..], Unframed::Short),
            (&[0, 0, 0][..], Unframed::Short),
            (&[1, 0, 0, 0, 1, 8][..], Unframed::Flag(1)),
            (&[7, 0, 0, 0, 1, 8][..], Unframed::Flag(7)),
            (&[0, 0, 0, 0, 3, 8][..], Unframed::Length),
            (&[0, 0, 0, 0, 1, 8, 0, 0, 0, 0, 0][..], Unframed::Length),
        ] {
            assert_eq!(unframe(Bytes::copy_from_slice(bad)), Err(why), "{bad:?}");
        }
    }
}
