"""The exit codes: what a script can branch on without reading the output."""

import enum

import grpc


class ExitCode(enum.IntEnum):
    OK = 0
    #: The call went through but what it reports ended badly: a quote FAILED,
    #: REJECTED or CANCELLED, a task FAILED, TIMED_OUT or CANCELLED, a batch or a
    #: redrive with rows that did not go through; also any status not listed here.
    FAILED = 1
    #: The command line or the input is wrong (argparse, INVALID_ARGUMENT).
    USAGE = 2
    NOT_FOUND = 3
    #: FAILED_PRECONDITION or ALREADY_EXISTS: the state does not allow it.
    CONFLICT = 4
    #: UNAVAILABLE or DEADLINE_EXCEEDED: the service could not be reached or did not answer.
    UNREACHABLE = 5
    RESOURCE_EXHAUSTED = 6
    #: UNAUTHENTICATED: no token, or one the service does not accept (expired,
    #: badly signed, issued for another audience).
    UNAUTHENTICATED = 7
    #: PERMISSION_DENIED: the token is good but its roles do not allow the call.
    PERMISSION_DENIED = 8
    # 130, for Ctrl-C, is quoteflow_cli.__main__'s: it applies before this module loads.


_BY_STATUS = {
    grpc.StatusCode.OK: ExitCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.USAGE,
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.CONFLICT,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.CONFLICT,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNREACHABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNREACHABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ExitCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.PERMISSION_DENIED,
}


def for_status(code: grpc.StatusCode) -> ExitCode:
    return _BY_STATUS.get(code, ExitCode.FAILED)


HELP = """\
exit codes:
  0    ok
  1    the call went through but its outcome is a failure: a quote FAILED,
       REJECTED or CANCELLED; a task FAILED, TIMED_OUT or CANCELLED; a batch or
       redrive with rows that did not go through; any other gRPC status
  2    bad usage or invalid input (INVALID_ARGUMENT), or a certificate, key
       or token that cannot be used
  3    not found
  4    failed precondition or already exists (the state does not allow it)
  5    a service is unavailable or did not answer in time (UNAVAILABLE,
       DEADLINE_EXCEEDED)
  6    resource exhausted (the quote queue is full)
  7    no token, or one the service does not accept (UNAUTHENTICATED)
  8    the token's roles do not allow the call (PERMISSION_DENIED)
  130  interrupted (Ctrl-C)
"""
