// Custom adapters written in JavaScript (SPEC §5 "Custom adapters"): plain classes using `this`,
// keeping a Map, as a Deno KV or Redis adapter written for the original would.

const clone = (v) => (v === undefined ? undefined : structuredClone(v));

/** The six required methods only. */
export class MapAdapter {
  constructor() {
    this.rows = new Map();
    this.calls = [];
  }

  async get(id) {
    this.calls.push(["get", id]);
    const row = this.rows.get(id);
    return row ? clone(row) : null;
  }

  async set(id, data) {
    this.calls.push(["set", id]);
    this.rows.set(id, clone(data));
  }

  async update(id, data) {
    this.calls.push(["update", id]);
    const row = this.rows.get(id);
    if (!row) return false;
    this.rows.set(id, { ...row, ...clone(data) });
    return true;
  }

  async delete(id) {
    this.calls.push(["delete", id]);
    this.rows.delete(id);
  }

  async cleanup(expiresBefore) {
    this.calls.push(["cleanup", expiresBefore]);
    let n = 0;
    for (const [id, row] of this.rows) {
      if (row.expiresAt < expiresBefore) {
        this.rows.delete(id);
        n++;
      }
    }
    return n;
  }

  async exists(id) {
    this.calls.push(["exists", id]);
    return this.rows.has(id);
  }
}

/** Also implements the optional listByUser / deleteByUser. */
export class FullMapAdapter extends MapAdapter {
  async listByUser(userId) {
    this.calls.push(["listByUser", userId]);
    return [...this.rows.values()].filter((r) => r.userId === userId).map(clone);
  }

  async deleteByUser(userId, except) {
    this.calls.push(["deleteByUser", userId, except]);
    let n = 0;
    for (const [id, row] of this.rows) {
      if (row.userId === userId && id !== except) {
        this.rows.delete(id);
        n++;
      }
    }
    return n;
  }
}
