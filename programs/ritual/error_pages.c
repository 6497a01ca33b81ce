/* error_pages.c - the start-up check of --error-page files; see http_app.h. */
#include "beneath.h"
#include "file_cache.h"
#include "http_app.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void files_check_error_pages(const struct http_app *app, ritual_loop *log)
{
    for (size_t i = 0; i < app->nerror_pages; i++) {
        const struct error_page *p = &app->error_pages[i];
        /* Opened as a request for it would be: "/sub/" is its index file.
         * O_NONBLOCK: a FIFO named as a page must not block the start. */
        char rel[PATH_MAX_BYTES + 256];
        size_t len = strlen(p->path);
        bool index = p->path[len - 1] == '/';
        int n = snprintf(rel, sizeof rel, "%s%s", p->path + 1, index ? app->index : "");
        int fd = n < 0 || (size_t)n >= sizeof rel
                     ? -ENAMETOOLONG
                     : open_beneath(app->root_fd, rel, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        const char *why = NULL;
        if (fd < 0)
            why = strerror(-fd);
        else if (fstat(fd, &st) < 0)
            why = strerror(errno);
        else if (S_ISDIR(st.st_mode))
            why = "a directory";
        else if (!S_ISREG(st.st_mode))
            why = "not a regular file";
        if (fd >= 0)
            close(fd);
        if (why)
            ritual_log(log, RITUAL_LOG_WARN,
                       "--error-page %d=%s: %s%s%s; %d is answered with its short text until "
                       "the page is a readable file",
                       p->status, p->path, index ? rel : "", index ? ": " : "", why, p->status);
    }
}
