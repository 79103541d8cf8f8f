// Per-shard counters: plain integers written only by their shard; read by others
// (for $SYS and metrics later) as relaxed snapshots, where a stale value is fine.
#pragma once

#include <cstdint>

namespace coremq::broker {

struct ShardCounters {
  uint64_t connections_accepted = 0;
  uint64_t connections_refused_limit = 0;
  uint64_t connections_current = 0;
  uint64_t protocol_errors = 0;
  uint64_t authentication_failures = 0;  // refused by the hook, connecting or re-authenticating
  // CONNECTs without a username refused by their listener's anonymous policy (CONNACK 0x05/0x87).
  uint64_t anonymous_refused = 0;
  uint64_t messages_received = 0;
  uint64_t messages_delivered = 0;
  uint64_t messages_forwarded_to_shards = 0;
  uint64_t qos0_dropped_slow_consumer = 0;
  uint64_t messages_dropped_queue_full = 0;
  uint64_t qos0_dropped_offline = 0;
  // Large payloads sent to plain-TCP clients from the message itself, not copied
  // (--payload-reference-min), and those copied because one send had its fill of them.
  uint64_t payloads_sent_by_reference = 0;
  uint64_t payload_references_over_bound = 0;
  // Large PUBLISHes whose message took over the buffer they were assembled in (no payload copy).
  uint64_t payloads_received_in_place = 0;
  uint64_t slow_consumers_disconnected = 0;
  uint64_t cross_shard_queue_full = 0;
  uint64_t keep_alive_expiries = 0;
  uint64_t connect_timeouts = 0;
  uint64_t retained_dropped_limit = 0;
  // A copy past the hard bound on retained messages (twice the limit): an update another
  // shard admitted was not stored here (the one case where copies can differ).
  uint64_t retained_dropped_hard_limit = 0;
  // Tombstones forgotten before their lifetime because there were too many of them.
  uint64_t retained_tombstones_evicted = 0;
  // Answers (SUBACK, retained PUBACK/PUBREC) that waited for every peer's barrier ack.
  uint64_t answers_held_for_peers = 0;
  uint64_t sessions_refused_limit = 0;
  // CONNECTs refused because the keep-alive is over --max-keepalive (3.1/3.1.1), and MQTT 5
  // keep-alives cut down to it.
  uint64_t keep_alive_refused = 0;
  uint64_t keep_alive_capped = 0;
  // Topic names, filters and will topics refused for having more than --max-topic-levels levels.
  uint64_t topic_levels_refused = 0;
  // Connections closed because a packet for them (other than PUBLISH, which is dropped) was
  // over the client's Maximum Packet Size even without its optional properties.
  uint64_t packets_over_client_maximum = 0;
  // Acknowledgements of the wrong kind for a message in flight (a PUBREC for QoS 1 ...).
  uint64_t wrong_acknowledgements = 0;
  // Closes that hit --close-linger (socket reset) or --close-linger-bytes (closed early).
  uint64_t closes_forced_deadline = 0;
  uint64_t closes_linger_bytes_exceeded = 0;
  // Wake-ups of a peer shard whose MSG_RING failed and went through its eventfd instead.
  uint64_t wakes_by_eventfd_fallback = 0;
  // TLS and WebSocket connections: handshakes completed, and connections closed because
  // their transport refused what the client sent (a failed handshake, a bad frame).
  uint64_t transport_handshakes = 0;
  uint64_t transport_errors = 0;
  // Turns that left handshake input for the next turn (--max-handshakes-per-turn reached).
  uint64_t handshakes_deferred = 0;
  // CONNECTs checked against a password file, and those refused (Server busy) because the
  // checker's queue from this shard was full.
  uint64_t password_checks = 0;
  uint64_t password_checks_refused_busy = 0;
  // In-process clients: operations refused because this shard's local intake was full
  // (Options::local_intake_capacity), and flushes that found the delivery queue full
  // (Options::local_delivery_queue_capacity; the output waits on the connection).
  uint64_t local_intake_full = 0;
  uint64_t local_delivery_queue_full = 0;
  // Inline in-process callbacks (LocalClientOptions::inline_callbacks) that ran over 1 ms on
  // the shard thread.
  uint64_t local_inline_callbacks_slow = 0;
  // ACL file refusals: PUBLISHes and wills dropped, SUBSCRIBE filters refused, and messages
  // not delivered to a subscriber that may not read their topic.
  uint64_t acl_publishes_denied = 0;
  uint64_t acl_subscriptions_denied = 0;
  uint64_t acl_deliveries_denied = 0;
  // SUBSCRIBE filters granted because the ACL check reached its bound of comparisons.
  uint64_t acl_subscribe_checks_over_budget = 0;
  // $SYS (src/shard/sys_topics.h): bytes read from and written to client sockets (one add per
  // receive or send completion, not per message), MQTT packets of every kind received and sent
  // (PUBLISH included), CONNECTs handled by their owner shard, and sessions ended by their
  // expiry interval while offline.
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t packets_received = 0;
  uint64_t packets_sent = 0;
  uint64_t connects_received = 0;
  uint64_t sessions_expired = 0;
  // --persistence: new durable state refused past --persistence-max-mb; answers (SUBACK,
  // retained PUBACK) that waited for the store's committer.
  uint64_t store_full_refusals = 0;
  uint64_t answers_held_for_store = 0;
  // Acknowledgements waiting for the store reached the client's bound (--receive-maximum):
  // its input waited too.
  uint64_t answers_held_input_for_store = 0;
  // The message interceptor (Options::message_interceptor): messages it dropped, clients it
  // disconnected, messages it rewrote, and rewrites refused as invalid (the message dropped).
  uint64_t interceptor_drops = 0;
  uint64_t interceptor_disconnects = 0;
  uint64_t interceptor_rewrites = 0;
  uint64_t interceptor_rewrites_invalid = 0;
  // Event hook calls over 1 ms (Options::event_hook; timed in debug builds only).
  uint64_t event_hook_slow = 0;
  // Asynchronous hook decisions: deferred, timed out (Options::hook_timeout_ms), refused at once
  // because the shard waited for Options::max_pending_hook_decisions already, hooks that
  // returned "defer" without calling defer() (refused with 0x83), and answers a full answer
  // ring dropped (folded in from the ring at each tick).
  uint64_t hook_decisions_deferred = 0;
  uint64_t hook_decisions_timed_out = 0;
  uint64_t hook_decisions_refused_busy = 0;
  uint64_t hook_defers_without_handle = 0;
  uint64_t hook_answers_dropped = 0;
};

// Every counter as (name, value), in declaration order: the stats line (README.md documents
// its format) and anything else that lists them. A new counter must be added here too; the
// size check fails the build until it is.
template <typename Visit>
void for_each_counter(const ShardCounters& counters, Visit&& visit) {
  static_assert(sizeof(ShardCounters) == 63 * sizeof(uint64_t), "list the new counter below");
  visit("connections_accepted", counters.connections_accepted);
  visit("connections_refused_limit", counters.connections_refused_limit);
  visit("connections_current", counters.connections_current);
  visit("protocol_errors", counters.protocol_errors);
  visit("authentication_failures", counters.authentication_failures);
  visit("anonymous_refused", counters.anonymous_refused);
  visit("messages_received", counters.messages_received);
  visit("messages_delivered", counters.messages_delivered);
  visit("messages_forwarded_to_shards", counters.messages_forwarded_to_shards);
  visit("qos0_dropped_slow_consumer", counters.qos0_dropped_slow_consumer);
  visit("payloads_sent_by_reference", counters.payloads_sent_by_reference);
  visit("payload_references_over_bound", counters.payload_references_over_bound);
  visit("payloads_received_in_place", counters.payloads_received_in_place);
  visit("messages_dropped_queue_full", counters.messages_dropped_queue_full);
  visit("qos0_dropped_offline", counters.qos0_dropped_offline);
  visit("slow_consumers_disconnected", counters.slow_consumers_disconnected);
  visit("cross_shard_queue_full", counters.cross_shard_queue_full);
  visit("keep_alive_expiries", counters.keep_alive_expiries);
  visit("connect_timeouts", counters.connect_timeouts);
  visit("retained_dropped_limit", counters.retained_dropped_limit);
  visit("retained_dropped_hard_limit", counters.retained_dropped_hard_limit);
  visit("retained_tombstones_evicted", counters.retained_tombstones_evicted);
  visit("answers_held_for_peers", counters.answers_held_for_peers);
  visit("sessions_refused_limit", counters.sessions_refused_limit);
  visit("keep_alive_refused", counters.keep_alive_refused);
  visit("keep_alive_capped", counters.keep_alive_capped);
  visit("topic_levels_refused", counters.topic_levels_refused);
  visit("packets_over_client_maximum", counters.packets_over_client_maximum);
  visit("wrong_acknowledgements", counters.wrong_acknowledgements);
  visit("closes_forced_deadline", counters.closes_forced_deadline);
  visit("closes_linger_bytes_exceeded", counters.closes_linger_bytes_exceeded);
  visit("wakes_by_eventfd_fallback", counters.wakes_by_eventfd_fallback);
  visit("transport_handshakes", counters.transport_handshakes);
  visit("transport_errors", counters.transport_errors);
  visit("handshakes_deferred", counters.handshakes_deferred);
  visit("password_checks", counters.password_checks);
  visit("password_checks_refused_busy", counters.password_checks_refused_busy);
  visit("local_intake_full", counters.local_intake_full);
  visit("local_delivery_queue_full", counters.local_delivery_queue_full);
  visit("local_inline_callbacks_slow", counters.local_inline_callbacks_slow);
  visit("acl_publishes_denied", counters.acl_publishes_denied);
  visit("acl_subscriptions_denied", counters.acl_subscriptions_denied);
  visit("acl_deliveries_denied", counters.acl_deliveries_denied);
  visit("acl_subscribe_checks_over_budget", counters.acl_subscribe_checks_over_budget);
  visit("bytes_received", counters.bytes_received);
  visit("bytes_sent", counters.bytes_sent);
  visit("packets_received", counters.packets_received);
  visit("packets_sent", counters.packets_sent);
  visit("connects_received", counters.connects_received);
  visit("sessions_expired", counters.sessions_expired);
  visit("store_full_refusals", counters.store_full_refusals);
  visit("answers_held_for_store", counters.answers_held_for_store);
  visit("answers_held_input_for_store", counters.answers_held_input_for_store);
  visit("interceptor_drops", counters.interceptor_drops);
  visit("interceptor_disconnects", counters.interceptor_disconnects);
  visit("interceptor_rewrites", counters.interceptor_rewrites);
  visit("interceptor_rewrites_invalid", counters.interceptor_rewrites_invalid);
  visit("event_hook_slow", counters.event_hook_slow);
  visit("hook_decisions_deferred", counters.hook_decisions_deferred);
  visit("hook_decisions_timed_out", counters.hook_decisions_timed_out);
  visit("hook_decisions_refused_busy", counters.hook_decisions_refused_busy);
  visit("hook_defers_without_handle", counters.hook_defers_without_handle);
  visit("hook_answers_dropped", counters.hook_answers_dropped);
}

}  // namespace coremq::broker
