//! `micro.broker`: messages.

use micro_core::broker::Message;
use micro_proto::broker as pb;

/// A message on the wire.
pub fn message_to_pb(message: Message) -> pb::Message {
    pb::Message {
        header: message.header.into_iter().collect(),
        body: message.body,
    }
}

/// A message from the wire.
pub fn message_from_pb(message: pb::Message) -> Message {
    Message {
        header: message.header.into_iter().collect(),
        body: message.body,
    }
}
