// The contract's workflow through a client generated from /openapi.json (openapi-typescript's types,
// openapi-fetch's calls): every value comes from a typed result, never from raw headers.
// Run by tests/test_typescript_client.py: BASE_URL and TOKEN in the environment; exit 0 when it holds.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema.js";

type Item = components["schemas"]["ItemPublic"];
declare const process: { env: Record<string, string | undefined>; exit(code: number): never };

function check(condition: boolean, what: string): asserts condition {
  if (!condition) {
    throw new Error(`failed: ${what}`);
  }
}

const client = createClient<paths>({
  baseUrl: process.env.BASE_URL,
  headers: { Authorization: `Bearer ${process.env.TOKEN}` },
});

async function create(name: string, tags: string[], key: string): Promise<Item> {
  const { data, response } = await client.POST("/items", {
    params: { header: { "idempotency-key": key } },
    body: { name, price: 24.99, tags },
  });
  check(response.status === 201 && data !== undefined, `create ${name}: ${response.status}`);
  return data;
}

async function main(): Promise<void> {
  const tagged = [["garden"], ["garden"], ["home"], ["garden", "outdoor"], ["garden"]];
  const made: Item[] = [];
  for (const [i, tags] of tagged.entries()) {
    made.push(await create(`Hose ${i}`, tags, `ts-${i}`));
  }
  const replay = await client.POST("/items", {
    params: { header: { "idempotency-key": "ts-0" } },
    body: { name: "Hose 0", price: 24.99, tags: ["garden"] },
  });
  check(replay.response.headers.get("idempotent-replayed") === "true", "a repeated key replays");
  check(replay.data?.id === made[0]?.id, "the replay is the first answer");

  const first = made[0];
  check(first !== undefined, "an item was created");
  // The ETag for If-Match, from the typed item.
  const patched = await client.PATCH("/items/{item_id}", {
    params: { path: { item_id: first.id }, header: { "if-match": first.etag } },
    body: { quantity: 4 },
  });
  check(patched.response.status === 200 && patched.data?.version === 2, "PATCH with the current ETag");
  const stale = await client.PATCH("/items/{item_id}", {
    params: { path: { item_id: first.id }, header: { "if-match": first.etag } },
    body: { quantity: 5 },
  });
  check(stale.response.status === 412 && typeof stale.error?.detail === "string", "PATCH with a stale ETag is 412");
  const current = await client.PATCH("/items/{item_id}", {
    params: { path: { item_id: first.id }, header: { "if-match": patched.data.etag } },
    body: { quantity: 5 },
  });
  check(current.response.status === 200 && current.data?.quantity === 5, "PATCH again with the new ETag");

  const seen: number[] = [];
  let cursor: string | null | undefined;
  do {
    const page = await client.GET("/items", {
      params: { query: { tag: "garden", q: "HOSE", limit: 1, ...(cursor ? { cursor } : {}) } },
    });
    check(page.response.status === 200 && page.data !== undefined, `page ${seen.length}`);
    seen.push(...page.data.items.map((item) => item.id));
    cursor = page.data.next_cursor;
  } while (cursor);
  const expected = made.filter((item) => item.tags.includes("garden")).map((item) => item.id);
  check(JSON.stringify(seen) === JSON.stringify(expected), `every page of tag+q: ${seen} vs ${expected}`);

  const deleted = await client.DELETE("/items/{item_id}", {
    params: { path: { item_id: first.id }, header: { "if-match": current.data.etag } },
  });
  check(deleted.response.status === 204, "DELETE with the current ETag");
  const gone = await client.GET("/items/{item_id}", { params: { path: { item_id: first.id } } });
  check(gone.response.status === 404 && gone.error?.detail === "Item not found", "the item is gone");

  const refused = await client.POST("/items", { body: { name: "Hose", price: 2000000000 } });
  const detail = refused.error?.detail;
  check(refused.response.status === 422 && Array.isArray(detail) && detail[0]?.loc[1] === "price", "422 names price");
  console.log(JSON.stringify({ created: made.length, pages: seen.length }));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
