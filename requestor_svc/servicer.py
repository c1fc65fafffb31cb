"""RequestorService: translates between quoteflow.requestor.v1 and the order tasks.

Errors raised by the tasks or by request checks are turned into precise
statuses by service_runtime's interceptor, so each method is a translation.
"""

import grpc

from quoteflow.requestor.v1 import requestor_service_pb2 as pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc as pb_grpc
from requestor_svc import convert
from requestor_svc.core_tasks import CoreTasks
from service_runtime.validation import require_id


class RequestorServicer(pb_grpc.RequestorServiceServicer):
    def __init__(self, tasks: CoreTasks) -> None:
        self._tasks = tasks

    async def PlaceOrder(
        self,
        request: pb.PlaceOrderRequest,
        context: grpc.aio.ServicerContext[pb.PlaceOrderRequest, pb.PlaceOrderResponse],
    ) -> pb.PlaceOrderResponse:
        args = convert.place_args(request)
        placed = await self._tasks.place(args.placement, args.request_id)
        return pb.PlaceOrderResponse(task_id=placed.task_id, queue_position=placed.queue_position)

    async def GetTaskResult(
        self,
        request: pb.GetTaskResultRequest,
        context: grpc.aio.ServicerContext[pb.GetTaskResultRequest, pb.GetTaskResultResponse],
    ) -> pb.GetTaskResultResponse:
        task = await self._tasks.result(require_id("task_id", request.task_id))
        return pb.GetTaskResultResponse(result=convert.task_result_to_pb(task))

    async def CancelTask(
        self,
        request: pb.CancelTaskRequest,
        context: grpc.aio.ServicerContext[pb.CancelTaskRequest, pb.CancelTaskResponse],
    ) -> pb.CancelTaskResponse:
        task = await self._tasks.cancel(require_id("task_id", request.task_id))
        return pb.CancelTaskResponse(result=convert.task_result_to_pb(task))

    async def GetStats(
        self,
        request: pb.GetStatsRequest,
        context: grpc.aio.ServicerContext[pb.GetStatsRequest, pb.GetStatsResponse],
    ) -> pb.GetStatsResponse:
        return convert.stats_to_pb(await self._tasks.stats())
