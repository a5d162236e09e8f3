/*
 * A conversation's messages as a tree: branches, versions, and the branch shown.
 *
 * The rules are the server's (streaming/services/tree.py, docs/protocol.md "Versions"), and
 * this is the same class, method for method, so that a tab shows at once what the server
 * will confirm. tests/js/tree-cases.json holds the cases both are tested against
 * (tests/js/tree.test.js here, tests/test_tree_cases.py there).
 *
 * A message is anything with `key` (its server id, or "local:<client_id>" until the server
 * has it), `id` (null until saved), `parentId` (the id of the message it follows, null for a
 * first turn), `role` and `createdAt` (ISO, null until saved). Pure: no DOM, no state kept.
 */
import { compareInstants } from "./instant.js";

// Written first, first (to the microsecond), then by id, as the server sorts; a message not
// saved yet is the newest (the sort is stable, so several of those keep their order).
function writtenOrder(a, b) {
  if (!a.createdAt || !b.createdAt) {
    return Number(!a.createdAt) - Number(!b.createdAt);
  }
  const byTime = compareInstants(a.createdAt, b.createdAt);
  if (byTime !== 0) {
    return byTime;
  }
  return a.id < b.id ? -1 : Number(a.id > b.id);
}

export class Tree {
  /** `messages`: an iterable of messages, read once. */
  constructor(messages) {
    /** Every message by key. */
    this.byKey = new Map();
    /** The messages that follow each message, by its id (null: first turns), oldest first. */
    this.children = new Map();
    for (const message of Array.from(messages).sort(writtenOrder)) {
      this.byKey.set(message.key, message);
      const parent = message.parentId ?? null;
      if (!this.children.has(parent)) {
        this.children.set(parent, []);
      }
      this.children.get(parent).push(message);
    }
  }

  /** The messages from the first turn down to `tip`, `tip` last ([] for null). */
  path(tip) {
    const path = [];
    const seen = new Set(); // a loop made by hand ends
    for (let node = tip; node && !seen.has(node.key);) {
      path.push(node);
      seen.add(node.key);
      node = node.parentId ? this.byKey.get(node.parentId) : null;
    }
    return path.reverse();
  }

  /** The end of the newest branch below `message` (itself when nothing follows it). */
  descend(message) {
    const seen = new Set([message.key]);
    let end = message;
    for (let next = this.children.get(end.key); next && next.length > 0;) {
      end = next[next.length - 1];
      if (seen.has(end.key)) {
        break;
      }
      seen.add(end.key);
      next = this.children.get(end.key);
    }
    return end;
  }

  /**
   * The last message of the branch shown: `leafKey` when it is one of these, else the end of
   * the newest branch (null without messages).
   */
  leaf(leafKey) {
    const leaf = leafKey ? this.byKey.get(leafKey) : undefined;
    const firsts = this.children.get(null) ?? [];
    if (!leaf && firsts.length > 0) {
      return this.descend(firsts[firsts.length - 1]);
    }
    return leaf ?? null;
  }

  /** The messages the conversation shows, first turn first. */
  branch(leafKey) {
    return this.path(this.leaf(leafKey));
  }

  /** `message` and its other versions (the same parent and role), oldest first. */
  versions(message) {
    const siblings = this.children.get(message.parentId ?? null) ?? [];
    return siblings.filter((other) => other.role === message.role);
  }
}
