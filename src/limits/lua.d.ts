/** Lua scripts, bundled as text by the wrangler module rule for `*.lua`. */
declare module "*.lua" {
  const source: string;
  export default source;
}
