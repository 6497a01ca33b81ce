/* post.h - calls posted to a loop from other threads. Private to the
 * library. */
#ifndef RITUAL_POST_H
#define RITUAL_POST_H

#include "ritual.h"

struct ritual_posts;
int ritual__posts_init(ritual_loop *loop);
void ritual__posts_ready(ritual_loop *loop);
/* Runs what is still queued, then frees; later posts get -ESHUTDOWN. */
void ritual__posts_free(ritual_loop *loop);

#endif
