// Conveyor's dashboard: plain JavaScript modules, no build step, no other origin.
// The page routes on the client (history API); every path it knows is also
// answered with this page by conveyor-api. The token lives in sessionStorage only
// and goes to /api/admin/* as the bearer token.

import { boot } from "./router.js";

boot();
