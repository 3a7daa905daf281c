/**
 * The second scheduler preload of warm schedulers (the pool's): a route on the dask-gateway preload's own API,
 * `POST /api/pool-claim {"idle_timeout": T}` with the cluster token, that arms the idle timeout when a user
 * claims the scheduler.
 *
 * Why: the dask-gateway preload measures idleness from the last task transition or, before any, from the
 * scheduler's start. A warm scheduler started with the user's idle timeout would count the time it waited in the
 * pool and stop soon after the claim. So warm schedulers start with `--dg-idle-timeout 0`, and the claim restarts
 * the preload's clock (`time_started`) and starts its own idle check with the user's timeout: from then on the
 * scheduler behaves exactly as one started cold at the claim with that timeout. The claim's answer also proves the
 * scheduler is alive before it is handed out.
 *
 * It is passed as the text of the preload (distributed accepts a module's source in `--preload`), so neither the
 * local environment nor a swarm image needs a file of the project's.
 */
import type { SchedulerLaunch } from "./backend.js";

/** The route the claim posts to (scheduler-api.ts). */
export const CLAIM_ROUTE = "/api/pool-claim";

/** Python source; kept short because dask logs it as the preload's name. */
export const POOL_CLAIM_PRELOAD = `# dask-gateway-swarm pool: arms the idle timeout when a user claims this warm scheduler
import asyncio, time
from dask_gateway.scheduler_preload import BaseHandler
from tornado import web
class PoolClaim(BaseHandler):
    @web.authenticated
    async def post(self):
        service = self.gateway_service
        if service.check_idle_task is not None:
            service.check_idle_task.cancel()
        service.scheduler.time_started = time.time()
        service.idle_timeout = max(0.0, float((self.json_data or {}).get("idle_timeout", 0)))
        service.check_idle_task = asyncio.ensure_future(service.check_idle()) if service.idle_timeout > 0 else None
        self.set_status(200)
def dask_setup(scheduler):
    scheduler.services["gateway"].app.wildcard_router.add_rules([("${CLAIM_ROUTE}", PoolClaim)])
`;

/** The arguments that add the claim preload; given right after `--preload dask_gateway.scheduler_preload`. */
export function claimPreloadArgs(launch: SchedulerLaunch): string[] {
  return launch.warm ? ["--preload", POOL_CLAIM_PRELOAD] : [];
}

