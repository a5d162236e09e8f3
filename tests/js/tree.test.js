/*
 * The page's tree of versions (chat/tree.js) against the cases the server's
 * streaming/services/tree.py is tested with too (tree-cases.json, tests/test_tree_cases.py),
 * and what only the page has: messages not saved yet.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import { Tree } from "../../streaming/static/streaming/chat/tree.js";

const { cases } = JSON.parse(readFileSync(new URL("./tree-cases.json", import.meta.url), "utf8"));

/** A message as the page keeps it, from one as the server sends it. */
function entry(message) {
  return {
    key: message.id,
    id: message.id,
    parentId: message.parent_id,
    role: message.role,
    createdAt: message.created_at,
  };
}

const keys = (messages) => messages.map((message) => message.key);

describe("Tree, on the cases shared with the server", () => {
  for (const expected of cases) {
    it(expected.name, () => {
      const tree = new Tree(expected.messages.map(entry));
      for (const leaves of expected.leaves) {
        const leaf = tree.leaf(leaves.leaf_id);
        assert.equal(leaf ? leaf.key : null, leaves.leaf, JSON.stringify(leaves));
        assert.deepEqual(keys(tree.branch(leaves.leaf_id)), leaves.branch);
      }
      for (const [start, end] of Object.entries(expected.descend)) {
        assert.equal(tree.descend(tree.byKey.get(start)).key, end, start);
      }
      for (const [of, versions] of Object.entries(expected.versions)) {
        assert.deepEqual(keys(tree.versions(tree.byKey.get(of))), versions, of);
      }
    });
  }
});

describe("Tree, with messages the server has not confirmed yet", () => {
  const saved = [
    { key: "u1", id: "u1", parentId: null, role: "user", createdAt: "2025-03-14T10:00:00+00:00" },
    {
      key: "a1",
      id: "a1",
      parentId: "u1",
      role: "assistant",
      createdAt: "2025-03-14T10:00:01+00:00",
    },
  ];
  const sending = (clientId) => ({
    key: `local:${clientId}`,
    id: null,
    parentId: "a1",
    role: "user",
    createdAt: null,
  });

  it("takes one not saved yet as the newest, after any saved one", () => {
    const later = { ...saved[1], key: "u2", id: "u2", role: "user" };
    later.createdAt = "2025-03-14T11:00:00+00:00";
    later.parentId = "a1";
    const tree = new Tree([...saved, sending("c1"), later]);
    assert.deepEqual(keys(tree.versions(later)), ["u2", "local:c1"]);
    assert.equal(tree.leaf(null).key, "local:c1");
  });

  it("keeps several not saved yet in the order they were sent", () => {
    const tree = new Tree([...saved, sending("c2"), sending("c1")]);
    assert.deepEqual(keys(tree.versions(tree.byKey.get("local:c2"))), ["local:c2", "local:c1"]);
  });

  it("shows the branch down to one being sent", () => {
    const tree = new Tree([...saved, sending("c1")]);
    assert.deepEqual(keys(tree.branch("local:c1")), ["u1", "a1", "local:c1"]);
  });
});
