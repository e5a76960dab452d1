/* The insertion-ordered hash map behind the windows, the distinct-value sets and the address cache. */
#include "native.h"

int lru_init(Lru *l, size_t cap) {
    l->tab = (Node **)calloc(cap, sizeof(Node *));
    if (!l->tab)
        return -1;
    l->mask = cap - 1;
    l->len = 0;
    l->head.prev = l->head.next = &l->head;
    return 0;
}

int lru_add(Lru *l, Node *x) {
    if (l->len + 1 > (l->mask + 1) / 4 * 3) {
        size_t cap = (l->mask + 1) * 2;
        Node **tab = (Node **)calloc(cap, sizeof(Node *));
        if (!tab)
            return -1;
        for (Node *y = l->head.next; y != &l->head; y = y->next) {
            y->hnext = tab[y->hash & (cap - 1)];
            tab[y->hash & (cap - 1)] = y;
        }
        free(l->tab);
        l->tab = tab;
        l->mask = cap - 1;
    }
    x->hnext = l->tab[x->hash & l->mask];
    l->tab[x->hash & l->mask] = x;
    x->prev = l->head.prev;
    x->next = &l->head;
    l->head.prev->next = x;
    l->head.prev = x;
    l->len++;
    return 0;
}

void lru_unlink(Lru *l, Node *x) {
    Node **pp = &l->tab[x->hash & l->mask];
    while (*pp != x)
        pp = &(*pp)->hnext;
    *pp = x->hnext;
    x->prev->next = x->next;
    x->next->prev = x->prev;
    l->len--;
}

/* a node and its key in one allocation */
void *node_new(size_t size, uint64_t h, const char *k, Py_ssize_t n) {
    Node *x = (Node *)calloc(1, size + (size_t)n + 1);
    if (!x)
        return NULL;
    x->hash = h;
    x->key = (char *)x + size;
    memcpy(x->key, k, (size_t)n);
    x->klen = n;
    return x;
}

int buf_set(Buf *b, const char *p, Py_ssize_t n) {
    if (n > b->cap) {
        Py_ssize_t cap = n < 64 ? 64 : n;
        char *q = (char *)realloc(b->p, (size_t)cap);
        if (!q)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p, p, (size_t)n);
    b->n = n;
    return 0;
}
