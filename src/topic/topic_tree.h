// TopicTree: the subscription index of one shard, mapping topic filters to subscribers.
//
// Threading: NOT thread-safe. Each shard owns one tree and touches it only from its own
// thread; other shards learn about filters through cross-shard messages, never by reading
// this tree. Ownership: the tree owns its nodes and the Data stored per subscription; it
// lives as long as its shard.
//
// Shape: one node per filter level. Exact levels are children in an absl::flat_hash_map
// looked up by string_view (no std::string is built to match); the '+' and '#' children are
// held in their own fields so matching reaches them without hashing. A node's subscribers
// sit in a contiguous vector visited in order by match(); removal swaps the last entry into
// the hole. Past kLinearScanSubscribersMax subscribers a node also keeps a
// Subscriber -> position index, so insert and remove stay O(1) with 100k subscribers on one
// filter ("$share"-less fan-out topics do get that big).
//
// Depth: a filter or topic has at most kTopicLevelsMax (65536) levels, since a 65535-byte
// string of slashes has that many empty levels. Nothing here spends a stack frame per level:
// insert, remove and pruning are loops, match() and for_each_filter() keep an explicit stack
// on the heap, and the destructor tears nodes down from a work list. match()'s stack is
// reserved by insert() for the deepest filter ever inserted (at most one pending entry per
// level), so match() itself never allocates.
//
// Bounds: the tree has no limit of its own; the broker bounds subscriptions per session and
// filter length is bounded by the packet size, which together bound the tree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "base/assert.h"
#include "topic/topic.h"

namespace coremq::topic {

// Subscriber: hashable with absl::Hash, equality-comparable, cheap to copy (a pointer or an
// id). Data: movable; whatever the broker keeps per subscription (QoS, options, identifier).
template <typename Subscriber, typename Data>
class TopicTree {
 public:
  // added_subscriber == false means the subscriber was already on this filter and only its
  // data was replaced (an MQTT re-SUBSCRIBE). first_for_filter: the filter had no subscriber
  // before, so other shards may need to hear about it.
  struct InsertResult {
    bool added_subscriber;
    bool first_for_filter;
  };
  // last_for_filter: the filter has no subscriber left on this shard.
  struct RemoveResult {
    bool removed;
    bool last_for_filter;
  };

  // Up to this many subscribers a node is searched linearly; beyond it, it keeps an index.
  // Below half of it again, the index is dropped (hysteresis, so one subscriber flapping at
  // the threshold does not rebuild it every time).
  static constexpr size_t kLinearScanSubscribersMax = 16;

  TopicTree() : root_(std::make_unique<Node>(nullptr)) { match_stack_.reserve(1); }
  ~TopicTree() { destroy_subtree(std::move(root_)); }
  // Pinned: nodes point at their parents and the match stack is sized for this tree.
  // A shard that needs to move one holds it by std::unique_ptr.
  TopicTree(const TopicTree&) = delete;
  TopicTree& operator=(const TopicTree&) = delete;

  // Adds `subscriber` to `filter`, or replaces its data when it is already there.
  // Precondition: `filter` is valid (the codec checked it); a bad one is a bug here.
  InsertResult insert(std::string_view filter, Subscriber subscriber, Data data) {
    COREMQ_ASSERT(!busy_);
    COREMQ_ASSERT(is_valid_topic_filter(filter));
    Node* node = root_.get();
    size_t depth = 0;
    LevelCursor levels(filter);
    while (levels.has_next()) {
      node = child_for_insert(node, levels.next());
      depth++;
    }
    if (depth > depth_max_) {
      depth_max_ = depth;
      match_stack_.reserve(depth_max_);  // match() pushes at most one entry per level
    }
    size_t position = find_entry(*node, subscriber);
    if (position != kNotFound) {
      node->entries[position].data = std::move(data);
      return {false, false};
    }
    bool first_for_filter = node->entries.empty();
    add_entry(node, std::move(subscriber), std::move(data));
    subscription_count_++;
    if (first_for_filter) filter_count_++;
    COREMQ_ASSERT(subscription_count_ >= filter_count_);
    return {true, first_for_filter};
  }

  // Removes `subscriber` from `filter` and prunes the nodes left with nothing in them.
  // An unknown filter or subscriber is not an error: {removed = false}.
  RemoveResult remove(std::string_view filter, Subscriber subscriber) {
    COREMQ_ASSERT(!busy_);
    Node* node = find_node(filter);
    if (node == nullptr) return {false, false};
    size_t position = find_entry(*node, subscriber);
    if (position == kNotFound) return {false, false};
    erase_entry(node, position);
    COREMQ_ASSERT(subscription_count_ > 0);
    subscription_count_--;
    bool last_for_filter = node->entries.empty();
    if (last_for_filter) {
      COREMQ_ASSERT(filter_count_ > 0);
      filter_count_--;
      prune(node, filter);
    }
    return {true, last_for_filter};
  }

  // Calls visit(const Subscriber&, const Data&) once per (matching filter, subscriber); a
  // subscriber on two matching filters is visited twice, and the broker picks the highest
  // QoS. `topic` is a valid topic name. Allocation-free. `visit` must not call back into this
  // tree (the walk reuses one scratch stack and holds references into the nodes).
  template <typename Visit>
  void match(std::string_view topic, Visit&& visit) const {
    BusyGuard guard(this);
    const bool dollar_topic = is_dollar_topic(topic);
    Frame frame{root_.get(), 0};
    match_stack_.clear();
    for (;;) {
      const Node* node = frame.node;
      if (frame.position > topic.size()) {
        // Every level is consumed: this node's filter matches, and so does its "#" child
        // because '#' also matches the parent level ("a/#" matches "a").
        visit_entries(*node, visit);
        if (node->hash_child) visit_entries(*node->hash_child, visit);
      } else {
        size_t slash = topic.find('/', frame.position);
        if (slash == std::string_view::npos) slash = topic.size();
        std::string_view level = topic.substr(frame.position, slash - frame.position);
        size_t next_position = slash + 1;
        // Wildcards at the first level do not match topics starting with '$'.
        bool wildcards_match = frame.position != 0 || !dollar_topic;
        const Node* plus = nullptr;
        if (wildcards_match) {
          if (node->hash_child) visit_entries(*node->hash_child, visit);
          plus = node->plus_child.get();
        }
        const Node* exact = nullptr;
        if (!node->children.empty()) {
          auto found = node->children.find(as_key(level));
          if (found != node->children.end()) exact = found->second.get();
        }
        if (exact != nullptr) {
          if (plus != nullptr) push_frame(Frame{plus, next_position});
          frame = Frame{exact, next_position};
          continue;
        }
        if (plus != nullptr) {
          frame = Frame{plus, next_position};
          continue;
        }
      }
      if (match_stack_.empty()) break;
      frame = match_stack_.back();
      match_stack_.pop_back();
    }
  }

  // Number of distinct filters with at least one subscriber.
  size_t filter_count() const { return filter_count_; }
  // Number of (filter, subscriber) pairs.
  size_t subscription_count() const { return subscription_count_; }
  // Nodes below the root; zero once every subscription is removed (pruning works).
  size_t node_count() const { return node_count_; }

  // Calls visit(std::string_view filter) once per filter with at least one subscriber, in
  // no particular order; used to replay a shard's filters to another shard. Allocates its
  // own work list (not a data-path call). `visit` must not call back into this tree.
  template <typename Visit>
  void for_each_filter(Visit&& visit) const {
    BusyGuard guard(this);
    struct Pending {
      const Node* node;
      std::string_view level;  // points into the node's key, stable while the tree is unchanged
      size_t prefix_bytes;     // length of the parent's filter in `filter`
    };
    std::vector<Pending> pending;
    std::string filter;
    auto push_children = [&pending](const Node& node, size_t prefix_bytes) {
      for (const auto& [level, child] : node.children) pending.push_back({child.get(), level, prefix_bytes});
      if (node.plus_child) pending.push_back({node.plus_child.get(), "+", prefix_bytes});
      if (node.hash_child) pending.push_back({node.hash_child.get(), "#", prefix_bytes});
    };
    push_children(*root_, 0);
    while (!pending.empty()) {
      Pending item = pending.back();
      pending.pop_back();
      filter.resize(item.prefix_bytes);
      if (item.node->parent != root_.get()) filter.push_back('/');
      filter.append(item.level);
      if (!item.node->entries.empty()) visit(std::string_view(filter));
      push_children(*item.node, filter.size());
    }
  }

 private:
  static constexpr size_t kNotFound = std::numeric_limits<size_t>::max();

  struct Entry {
    Subscriber subscriber;
    Data data;
  };

  struct Node {
    explicit Node(Node* parent_node) : parent(parent_node) {}
    bool is_empty() const { return entries.empty() && children.empty() && !plus_child && !hash_child; }

    Node* parent;  // null for the root
    // Exact levels only; "+" and "#" never appear as keys. absl's std::string hash and
    // equality are transparent, so lookups take a string_view (see as_key()).
    absl::flat_hash_map<std::string, std::unique_ptr<Node>> children;
    std::unique_ptr<Node> plus_child;
    std::unique_ptr<Node> hash_child;
    std::vector<Entry> entries;  // subscribers of the filter ending at this node
    // Subscriber -> position in `entries`; present only above kLinearScanSubscribersMax.
    std::unique_ptr<absl::flat_hash_map<Subscriber, uint32_t>> index;
  };

  struct Frame {
    const Node* node;
    size_t position;  // start of the next topic level; topic.size() + 1 once all are consumed
  };

  // Marks the tree busy for the length of a walk so that a visitor mutating the tree, or
  // matching re-entrantly on the shared stack, trips an assertion instead of corrupting it.
  class BusyGuard {
   public:
    explicit BusyGuard(const TopicTree* tree) : tree_(tree) {
      COREMQ_ASSERT_MSG(!tree_->busy_, "TopicTree re-entered from a visitor");
      tree_->busy_ = true;
    }
    ~BusyGuard() { tree_->busy_ = false; }
    BusyGuard(const BusyGuard&) = delete;
    BusyGuard& operator=(const BusyGuard&) = delete;

   private:
    const TopicTree* tree_;
  };

  // This Abseil build has its own absl::string_view (not std::string_view), and the
  // transparent std::string hash takes only that; converting costs nothing.
  static absl::string_view as_key(std::string_view level) { return absl::string_view(level.data(), level.size()); }

  template <typename Visit>
  static void visit_entries(const Node& node, Visit& visit) {
    for (const Entry& entry : node.entries) visit(entry.subscriber, entry.data);
  }

  void push_frame(Frame frame) const {
    // insert() reserved one slot per level of the deepest filter; running out would mean
    // match() allocates, which the publish path must not do.
    COREMQ_ASSERT(match_stack_.size() < match_stack_.capacity());
    match_stack_.push_back(frame);
  }

  Node* child_for_insert(Node* node, std::string_view level) {
    std::unique_ptr<Node>* slot;
    if (level == "+") {
      slot = &node->plus_child;
    } else if (level == "#") {
      slot = &node->hash_child;
    } else {
      slot = &node->children.try_emplace(as_key(level)).first->second;
    }
    if (!*slot) {
      *slot = std::make_unique<Node>(node);
      node_count_++;
    }
    return slot->get();
  }

  Node* find_node(std::string_view filter) const {
    Node* node = root_.get();
    LevelCursor levels(filter);
    while (levels.has_next() && node != nullptr) {
      std::string_view level = levels.next();
      if (level == "+") {
        node = node->plus_child.get();
      } else if (level == "#") {
        node = node->hash_child.get();
      } else {
        auto found = node->children.find(as_key(level));
        node = found == node->children.end() ? nullptr : found->second.get();
      }
    }
    return node;
  }

  // Walks from `node` towards the root, unlinking nodes left empty. The levels are read off
  // `filter` from its end, so nodes need not store their own names.
  void prune(Node* node, std::string_view filter) {
    std::string_view remaining = filter;
    while (node != root_.get() && node->is_empty()) {
      size_t slash = remaining.rfind('/');
      std::string_view level = slash == std::string_view::npos ? remaining : remaining.substr(slash + 1);
      remaining = slash == std::string_view::npos ? std::string_view() : remaining.substr(0, slash);
      Node* parent = node->parent;
      // `node` has no children, so destroying it here recurses no further.
      if (level == "+") {
        COREMQ_ASSERT(parent->plus_child.get() == node);
        parent->plus_child.reset();
      } else if (level == "#") {
        COREMQ_ASSERT(parent->hash_child.get() == node);
        parent->hash_child.reset();
      } else {
        size_t erased = parent->children.erase(as_key(level));
        COREMQ_ASSERT(erased == 1);
      }
      node_count_--;
      node = parent;
    }
  }

  static size_t find_entry(const Node& node, const Subscriber& subscriber) {
    if (node.index) {
      auto found = node.index->find(subscriber);
      return found == node.index->end() ? kNotFound : found->second;
    }
    for (size_t position = 0; position < node.entries.size(); position++) {
      if (node.entries[position].subscriber == subscriber) return position;
    }
    return kNotFound;
  }

  static void add_entry(Node* node, Subscriber subscriber, Data data) {
    COREMQ_ASSERT(node->entries.size() < std::numeric_limits<uint32_t>::max());
    node->entries.push_back(Entry{std::move(subscriber), std::move(data)});
    uint32_t position = static_cast<uint32_t>(node->entries.size() - 1);
    if (node->index) {
      node->index->emplace(node->entries.back().subscriber, position);
    } else if (node->entries.size() > kLinearScanSubscribersMax) {
      node->index = std::make_unique<absl::flat_hash_map<Subscriber, uint32_t>>();
      node->index->reserve(node->entries.size());
      for (uint32_t i = 0; i <= position; i++) node->index->emplace(node->entries[i].subscriber, i);
    }
  }

  static void erase_entry(Node* node, size_t position) {
    std::vector<Entry>& entries = node->entries;
    COREMQ_ASSERT(position < entries.size());
    size_t last = entries.size() - 1;
    if (node->index) node->index->erase(entries[position].subscriber);
    if (position != last) {
      entries[position] = std::move(entries[last]);
      if (node->index) (*node->index)[entries[position].subscriber] = static_cast<uint32_t>(position);
    }
    entries.pop_back();
    if (node->index && entries.size() <= kLinearScanSubscribersMax / 2) node->index.reset();
    // A filter that lost its last subscriber may keep its node (it has children); give
    // back the vector a large fan-out left behind.
    if (entries.empty()) std::vector<Entry>().swap(entries);
    COREMQ_ASSERT(!node->index || node->index->size() == entries.size());
  }

  // Frees a subtree from a work list: the default recursive destructor would spend one
  // stack frame per level, and a filter may have 65536 levels.
  static void destroy_subtree(std::unique_ptr<Node> top) {
    std::vector<std::unique_ptr<Node>> pending;
    pending.push_back(std::move(top));
    while (!pending.empty()) {
      std::unique_ptr<Node> node = std::move(pending.back());
      pending.pop_back();
      if (!node) continue;
      for (auto& [level, child] : node->children) pending.push_back(std::move(child));
      pending.push_back(std::move(node->plus_child));
      pending.push_back(std::move(node->hash_child));
      // `node` is freed here with all its children already moved out.
    }
  }

  std::unique_ptr<Node> root_;
  size_t filter_count_ = 0;
  size_t subscription_count_ = 0;
  size_t node_count_ = 0;
  size_t depth_max_ = 0;  // levels in the deepest filter ever inserted; never shrinks
  mutable std::vector<Frame> match_stack_;
  mutable bool busy_ = false;
};

}  // namespace coremq::topic
