/* error.c - status codes and the thread-local "last error" message (see roteq_util.h). */
#include "roteq_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char error_message[1024];
static _Thread_local int error_status;

const char *roteq_strerror(int status)
{
    switch (status) {
    case ROTEQ_OK:
        return "success";
    case ROTEQ_EINVAL:
        return "invalid argument";
    case ROTEQ_ENOMEM:
        return "out of memory";
    case ROTEQ_EIO:
        return "input/output error";
    case ROTEQ_EFORMAT:
        return "malformed input";
    case ROTEQ_EUNSUPPORTED:
        return "not supported";
    case ROTEQ_ENOTFOUND:
        return "not found";
    case ROTEQ_ERUNTIME:
        return "external program failed";
    default:
        return "unknown error";
    }
}

int roteq_error_set(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    /* One line, always: a newline inside a message would break "one-line error" output. */
    for (char *p = error_message; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    error_status = status;
    return status;
}

const char *roteq_error_message(void)
{
    return error_message;
}

int roteq_error_status(void)
{
    return error_status;
}

void roteq_error_clear(void)
{
    error_message[0] = '\0';
    error_status = ROTEQ_OK;
}
