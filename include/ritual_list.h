/* ritual_list.h - an intrusive doubly linked list, header only.
 *
 * The library's own objects are linked with it, and a protocol or an
 * application built on libritual may use it too (the HTTP layer does): a
 * node is embedded in the object it links, so linking allocates nothing,
 * and a node leaves its list without knowing which list that is. The list
 * is circular with a sentinel head, as in the Linux kernel. */
#ifndef RITUAL_LIST_H
#define RITUAL_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* The object of type `type` whose member `member` is at `ptr`. */
#define ritual_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct ritual_list {
    struct ritual_list *prev, *next;
};

/* An empty list, or a node on no list (ritual_list_del leaves it so). */
static inline void ritual_list_init(struct ritual_list *head)
{
    head->prev = head->next = head;
}

static inline bool ritual_list_empty(const struct ritual_list *head)
{
    return head->next == head;
}

static inline void ritual_list_add_tail(struct ritual_list *head, struct ritual_list *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

/* Unlinks `node`, which then reads as an empty list: deleting it again is
 * harmless. */
static inline void ritual_list_del(struct ritual_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

/* Moves every node of `from` to the end of `to`. */
static inline void ritual_list_splice(struct ritual_list *from, struct ritual_list *to)
{
    if (ritual_list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    ritual_list_init(from);
}

#endif /* RITUAL_LIST_H */
