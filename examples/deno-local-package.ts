// What the Deno examples import as "@slices-rs/session" inside this repository (their deno.json
// maps the name here): the npm package of this checkout (npm/, built by `make build`), with its
// types. In your own app, map the name to the published package instead:
//   "imports": { "@slices-rs/session": "npm:@slices-rs/session@^0.1.0" }
// @ts-types="../npm/index.d.ts"
export * from "../npm/index.js";
