-- bench/wrk_objects.lua — wrk request generator for object benchmarks: PUT of unique names with a
-- fixed-size body, or GET cycling over pre-populated names; prints one machine-readable line.
--
-- wrk ... -s bench/wrk_objects.lua URL -- put PREFIX NAME SIZE
--     PUT PREFIX NAME-<thread>-<n> with a SIZE-byte body; every request a new name.
-- wrk ... -s bench/wrk_objects.lua URL -- get PREFIX NAME COUNT [STATE]
--     GET PREFIX NAME-0000 .. NAME-<COUNT-1>, cycling (objects stored beforehand). With a
--     STATE file, every thread continues where it stopped in the previous run with that file
--     (the file holds the requests each thread made so far), so that runs one after another
--     read the set like one long run instead of reading the same objects again.
-- PREFIX is the URL path prefix ("/" for storaged, "/dav/" for nginx). At the end one line
--     RESULT requests=N duration_us=N bytes=N errors_connect=N ... lat_p50_us=N lat_p99_us=N
-- goes to stdout; bench scripts parse it. Status >= 400 counts as errors_status.

local next_id = 0
local threads = {}

-- Steps each thread already made in earlier runs with STATE (0 without one).
local function state_read(path)
    local f = path and io.open(path, "r")
    if not f then return 0 end
    local steps = tonumber(f:read("*l")) or 0
    f:close()
    return steps
end

function setup(thread)
    thread:set("thread_id", next_id)
    next_id = next_id + 1
    threads[#threads + 1] = thread
end

local mode, reqs, nreqs, cursor, head, body, tail_name
-- Globals, so that done() can read them through thread:get: requests this thread made
-- (counting earlier runs with STATE), and the STATE path.
steps = 0
state_file = nil

function init(args)
    mode = args[1]
    local prefix, name = args[2], args[3]
    local n = tonumber(args[4])
    local host = "Host: " .. wrk.headers["Host"] .. "\r\n"  -- set by wrk before init()
    if mode == "put" then
        -- A body that does not compress and is the same for every request.
        local block = {}
        for i = 0, 255 do block[#block + 1] = string.char((i * 167 + 13) % 256) end
        block = table.concat(block)
        body = string.rep(block, math.ceil(n / 256)):sub(1, n)
        head = "PUT " .. prefix .. name .. "-" .. thread_id .. "-"
        tail_name = " HTTP/1.1\r\n" .. host .. "Content-Length: " .. n .. "\r\n\r\n"
        cursor = 0
    elseif mode == "get" then
        reqs = {}
        for i = 0, n - 1 do
            reqs[i + 1] = string.format("GET %s%s-%04d HTTP/1.1\r\n%s\r\n", prefix, name, i, host)
        end
        nreqs = n
        -- Threads start far apart (golden-ratio offsets: 0, 0.62 n, 0.24 n, ...), so none
        -- reads what another one read just before: with two threads each object is read again
        -- only after at least 0.76 n others, and a cache smaller than that (the dispatcher's
        -- body cache in the "cold" set) cannot serve the second thread from the first one's
        -- reads (a fixed offset of 7919 objects let it serve about half of them).
        state_file = args[5]
        steps = state_read(state_file)
        cursor = (math.floor(n * ((thread_id * 0.6180339887) % 1)) + steps) % n
    else
        error("wrk_objects.lua: mode must be put or get, not " .. tostring(mode))
    end
end

function request()
    if mode == "put" then
        cursor = cursor + 1
        return head .. cursor .. tail_name .. body
    end
    cursor = cursor % nreqs + 1
    steps = steps + 1
    return reqs[cursor]
end

-- The furthest thread's steps go to STATE: the next run skips at most a few objects.
local function state_write(path)
    local most, f = 0, nil
    for _, t in ipairs(threads) do
        most = math.max(most, tonumber(t:get("steps")) or 0)
    end
    f = assert(io.open(path, "w"))
    f:write(most, "\n")
    f:close()
end

function done(summary, latency, requests)
    local e = summary.errors
    if threads[1] and threads[1]:get("state_file") then
        state_write(threads[1]:get("state_file"))
    end
    io.write(string.format(
        "RESULT requests=%d duration_us=%d bytes=%d errors_connect=%d errors_read=%d " ..
        "errors_write=%d errors_status=%d errors_timeout=%d lat_p50_us=%d lat_p99_us=%d " ..
        "lat_max_us=%d\n",
        summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
        e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
