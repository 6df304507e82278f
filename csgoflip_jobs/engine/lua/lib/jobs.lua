-- Library: which job a task message is, and where a job's Celery result lives.
-- A job id is unique within its queue; Celery's task id is unique everywhere, so a job
-- given its own id is the task '<queue>:<job id>' and the platform's header
-- (enqueue.JOB_HEADER, 'bullmq') names its job id. job_id_of(headers) is the job id of
-- a message's headers (the task id when the header names none), nil when there is none.
-- result_key_of(prefix, job, id) is the key of job `id`'s Celery result: its record
-- (key `job`) holds 'task_id' when the task id is not the job id.
local function job_id_of(headers)
  local header = headers['bullmq']
  local id = type(header) == 'table' and header['job_id']
  if type(id) == 'string' then
    return id
  end
  id = headers['id']
  return type(id) == 'string' and id or nil
end

local function result_key_of(prefix, job, id)
  return prefix .. (redis.call('HGET', job, 'task_id') or id)
end
